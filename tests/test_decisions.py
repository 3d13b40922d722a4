"""``decisions`` in summary.json counts every decision the components took (the denominator of
late decisions): per request the router's two placements (one without a KV hand-over), one
transfer start, and per batch or admission one prefill or decode decision — counted here
independently from the requests table."""

from __future__ import annotations

from conftest import make_experiment

from disagg.experiments.run import run_experiment


def test_decisions_count_every_components_decisions() -> None:
    exp = make_experiment(experiment__duration_s=20.0, workload__rate_per_s=8.0)
    result = run_experiment(exp)
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    assert len(rows) > 100  # enough that batches and admissions of several requests occur
    with_kv = [r for r in rows if r["output_tokens"] > 1]
    router = len(rows) + len(with_kv)  # placement on prefill; on decode when a KV is handed over
    fabric = len(with_kv)  # one transfer start each
    batches = len({(r["prefill_unit"], r["prefill_start_s"]) for r in rows})
    admissions = len({(r["decode_unit"], r["decode_start_s"]) for r in with_kv})
    assert batches < len(rows) and admissions < len(with_kv)  # some decisions took several
    assert result.summary["decisions"] == router + fabric + batches + admissions
    assert result.summary["late_decisions"] == 0  # the virtual engine delivers nothing late

"""The whole pipeline on the virtual engine: exact timelines, determinism, queueing theory."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import make_experiment

from disagg.cluster.hardware.perf import decode_step_time, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment


def _rows(result):
    return result.tables["requests"].to_pylist()


def test_single_request_timeline_is_exact() -> None:
    exp = make_experiment(
        experiment__duration_s=1.5,
        workload__arrivals={"kind": "constant"}, workload__rate_per_s=1.0,
        workload__prompt_tokens={"kind": "fixed", "value": 1000},
        workload__output_tokens={"kind": "fixed", "value": 10},
    )
    [row] = _rows(run_experiment(exp))
    m, trn, cs3 = exp.model, exp.prefill.hardware, exp.decode.hardware
    first = 1.0 + prefill_time([1000], m, trn, 4).seconds
    kv = kv_bytes(1000, m)
    ready = first + kv / 400e9 + 35e-6  # trn2 host EFA 3,200 Gbps is the narrowest link
    steps = sum(decode_step_time(1, 1001 + i, m, cs3, 4) for i in range(9))
    assert row["status"] == "completed"
    assert row["arrival_s"] == pytest.approx(1.0)
    assert row["prefill_start_s"] == pytest.approx(1.0)
    assert row["first_token_s"] == pytest.approx(first, rel=1e-12)
    assert row["kv_bytes"] == kv
    assert row["transfer_start_s"] == pytest.approx(first, rel=1e-12)
    assert row["transfer_end_s"] == pytest.approx(ready, rel=1e-12)
    assert row["decode_start_s"] == pytest.approx(ready, rel=1e-12)
    assert row["last_token_s"] == pytest.approx(ready + steps, rel=1e-12)
    assert row["tpot_s"] == pytest.approx((ready + steps - first) / 9, rel=1e-9)
    assert row["slo_met"] is True


def test_same_seed_gives_identical_requests(tmp_path) -> None:
    exp = make_experiment(workload__rate_per_s=12.0)
    a = run_experiment(exp, tmp_path / "a")
    b = run_experiment(exp, tmp_path / "b")
    ta = pq.read_table(tmp_path / "a" / "requests.parquet")
    tb = pq.read_table(tmp_path / "b" / "requests.parquet")
    assert ta.num_rows > 30
    assert ta.equals(tb)
    assert a.summary["mean_ttft_ms"] == b.summary["mean_ttft_ms"]
    c = run_experiment(make_experiment(workload__rate_per_s=12.0, experiment__seed=8))
    assert not c.tables["requests"].equals(ta)


def test_results_folder_has_the_five_files(tmp_path) -> None:
    run_experiment(make_experiment(), tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".disagg-results", "config.toml", "requests.parquet", "summary.json",
                     "timeseries.parquet", "transfers.parquet"]


def test_every_request_ends_in_exactly_one_status_under_overload() -> None:
    # far more load than one decode unit with little KV headroom can serve in the drain window
    exp = make_experiment(
        workload__rate_per_s=40.0, experiment__drain_timeout_s=2.0,
        decode__hardware={"name": "cs3", "memory_bytes": 36.0e9},
    )
    result = run_experiment(exp)
    rows = _rows(result)
    assert len(rows) == result.summary["submitted"] == len({r["request_id"] for r in rows})
    statuses = {r["status"] for r in rows}
    assert statuses <= {"completed", "rejected", "failed"}
    assert "failed" in statuses  # unfinished at the drain deadline
    s = result.summary
    assert s["completed"] + s["rejected"] + s["failed"] == s["submitted"]
    unfinished = [r for r in rows if r["status"] == "failed"]
    assert all(r["reason"] == "unfinished_at_drain_deadline" for r in unfinished)


def test_decode_waits_for_kv_memory() -> None:
    # KV room for about two requests: admission must hold the rest back, never exceed capacity
    # (up-front reservation; paged KV admits by blocks and preempts: test_paged_kv.py)
    exp = make_experiment(
        decode__hardware={"name": "cs3", "memory_bytes": 35.95e9}, decode__kv_allocation="reserve",
        workload__rate_per_s=4.0,
        workload__prompt_tokens={"kind": "fixed", "value": 2000},
        workload__output_tokens={"kind": "fixed", "value": 2000},
    )
    result = run_experiment(exp)
    cap = 4 * 35.95e9 - exp.model.weight_bytes
    per_request = kv_bytes(4000, exp.model)
    assert cap // per_request == 2
    ts = result.tables["timeseries"].to_pylist()
    used = [r["kv_used_bytes"] for r in ts if r["entity"] == "decode-0"]
    assert max(used) <= cap
    rows = _rows(result)
    # held back by the router (KV-aware placement) or by the unit's own admission
    waited = [r for r in rows if r["decode_start_s"] - r["first_token_s"] > 0.1]
    assert waited, "some request should have waited for KV memory"
    assert all(r["status"] == "completed" for r in rows)


def test_prefill_queueing_matches_md1() -> None:
    """One unit, batch size 1, fixed 1,000-token prompts, Poisson arrivals at 70% load:
    mean wait in queue = rho * S / (2 (1 - rho)) (Pollaczek-Khinchine for M/D/1)."""
    exp0 = make_experiment()
    service = prefill_time([1000], exp0.model, exp0.prefill.hardware, 4).seconds
    rho, n = 0.7, 25_000
    exp = make_experiment(
        experiment__duration_s=1e6, prefill__units=1,
        workload__rate_per_s=rho / service, workload__max_requests=n,
        workload__prompt_tokens={"kind": "fixed", "value": 1000},
        workload__output_tokens={"kind": "fixed", "value": 1},
        policies__prefill_batching={"name": "fcfs", "max_batch_requests": 1},
    )
    rows = _rows(run_experiment(exp))
    assert len(rows) == n and all(r["status"] == "completed" for r in rows)
    waits = [r["prefill_start_s"] - r["arrival_s"] for r in rows]
    expected = rho * service / (2 * (1 - rho))
    assert sum(waits) / n == pytest.approx(expected, rel=0.05)


def test_tampered_and_missing_payloads_fail_with_reasons() -> None:
    exp = make_experiment(faults=[{"kind": "kv_corrupt", "requests": [1]},
                                  {"kind": "kv_drop", "requests": [2]}],
                          workload__output_tokens={"kind": "fixed", "value": 20})
    rows = {r["request_id"]: r for r in _rows(run_experiment(exp))}
    assert (rows[1]["status"], rows[1]["reason"]) == ("failed", "kv_checksum")
    assert (rows[2]["status"], rows[2]["reason"]) == ("failed", "kv_missing")
    assert rows[0]["status"] == "completed"


def test_control_delay_makes_views_stale_but_loses_nothing() -> None:
    exp = make_experiment(experiment__control_delay_s=0.002, workload__rate_per_s=10.0)
    result = run_experiment(exp)
    rows = _rows(result)
    assert all(r["status"] == "completed" for r in rows)
    assert max(r["prefill_view_age_s"] for r in rows) > 0


def test_policy_shootout_slo_aware_beats_round_robin() -> None:
    from pathlib import Path

    from disagg.cluster.config import load_experiment

    path = Path(__file__).resolve().parents[1] / "experiments" / "policy_shootout.toml"
    runs = {}
    for policy in ("round_robin", "slo_aware"):
        exp = load_experiment(path, {"policies.router": policy, "experiment.duration_s": 30.0})
        runs[policy] = run_experiment(exp).summary
    rr, slo = runs["round_robin"], runs["slo_aware"]
    assert slo["request_goodput"] > 2 * rr["request_goodput"]
    assert slo["slo_attainment"] > rr["slo_attainment"] + 0.3
    assert slo["rejected"] > 0 and rr["rejected"] == 0


@pytest.mark.parametrize("batching", [
    {"name": "batch_forming", "max_batch_tokens": 2048, "max_wait_s": 0.02},
    {"name": "shortest_prompt_first", "aging_s": 0.5},
    {"name": "edf"},
])
def test_batching_policies_run_end_to_end(batching) -> None:
    exp = make_experiment(policies__prefill_batching=batching,
                          policies__decode_admission={"name": "tpot_aware"},
                          workload__rate_per_s=10.0)
    rows = _rows(run_experiment(exp))
    assert rows and all(r["status"] == "completed" for r in rows)


@pytest.mark.parametrize("lost", ["decode-1", "prefill-0"])
def test_losing_a_unit_redoes_its_requests(lost) -> None:
    exp = make_experiment(decode__units=2, workload__rate_per_s=12.0,
                          workload__output_tokens={"kind": "fixed", "value": 1500},
                          faults=[{"kind": "unit_loss", "unit": lost, "at_s": 2.0}])
    result = run_experiment(exp)
    rows = _rows(result)
    assert len(rows) == result.summary["submitted"]
    for r in rows:
        assert r["status"] in ("completed", "failed")
        assert r["status"] == "completed" or r["reason"]
    router = next(c for c in result.raw["components"] if c["name"] == "router")
    assert router["units_down"] == [lost] and router["redone"] > 0
    kind = lost.split("-")[0]
    late = [r for r in rows if r["arrival_s"] > 2.5]
    assert late and all(r[f"{kind}_unit"] != lost for r in late)
    assert all(r["status"] == "completed" for r in rows)


def test_unit_loss_must_name_a_unit(tmp_path) -> None:
    from disagg.cluster.errors import ConfigError
    from disagg.experiments.checks import check_experiment

    with pytest.raises(ConfigError, match="decode-5"):
        check_experiment(make_experiment(
            faults=[{"kind": "unit_loss", "unit": "decode-5", "at_s": 1}]))


def test_a_run_with_no_requests_still_writes_its_results(tmp_path) -> None:
    result = run_experiment(make_experiment(experiment__duration_s=0.01), tmp_path / "empty")
    assert result.summary["submitted"] == 0 and result.summary["slo_attainment"] is None
    assert (tmp_path / "empty" / "requests.parquet").exists()

"""Layer-wise streaming and fabric contention through the whole pipeline on the virtual engine."""

from __future__ import annotations

import pytest
from conftest import make_experiment

from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment


def _one_request(**overrides):
    return make_experiment(
        experiment__duration_s=1.5, workload__arrivals={"kind": "constant"},
        workload__rate_per_s=1.0, workload__prompt_tokens={"kind": "fixed", "value": 1000},
        workload__output_tokens={"kind": "fixed", "value": 10}, **overrides,
    )


def test_layer_wise_single_request_ends_one_layer_after_the_prefill() -> None:
    exp = _one_request(fabric={"layer_wise": True})
    [row] = run_experiment(exp).tables["requests"].to_pylist()
    d = prefill_time([1000], exp.model, exp.prefill.hardware, 4).seconds
    layer_s = kv_bytes(1000, exp.model) / 80 / 400e9  # one layer over trn2's 3,200 Gbps EFA
    assert row["first_token_s"] == pytest.approx(1.0 + d, rel=1e-12)
    assert row["transfer_start_s"] == pytest.approx(1.0 + d / 80, rel=1e-12)
    assert row["transfer_end_s"] == pytest.approx(1.0 + d + layer_s + 35e-6, rel=1e-12)
    assert row["decode_start_s"] == row["transfer_end_s"]
    [off] = run_experiment(_one_request()).tables["requests"].to_pylist()
    assert off["ttft_s"] == row["ttft_s"]
    assert off["decode_start_s"] - row["decode_start_s"] == pytest.approx(79 * layer_s, rel=1e-9)


def _contended(layer_wise: bool):
    return make_experiment(
        experiment__duration_s=8.0, workload__rate_per_s=3.0,
        workload__prompt_tokens={"kind": "fixed", "value": 6000},
        workload__output_tokens={"kind": "fixed", "value": 50},
        prefill__chips_per_unit=16, prefill__units=3, decode__host_nic_gbps=100.0,
        fabric={"layer_wise": layer_wise, "layer_chunks": 8}, slo__tpot_s=1.0,
    )


def test_layer_wise_keeps_ttft_and_starts_decode_earlier_under_contention() -> None:
    off = run_experiment(_contended(False))
    on = run_experiment(_contended(True))
    rows_off = off.tables["requests"].to_pylist()
    rows_on = on.tables["requests"].to_pylist()
    assert len(rows_on) == len(rows_off) > 15
    assert all(r["status"] == "completed" for r in rows_on + rows_off)
    assert [r["ttft_s"] for r in rows_on] == [r["ttft_s"] for r in rows_off]

    def handoff(rows):
        return sum(r["decode_start_s"] - r["first_token_s"] for r in rows) / len(rows)

    assert handoff(rows_on) < handoff(rows_off)
    assert on.summary["mean_tpot_ms"] < off.summary["mean_tpot_ms"]
    assert on.summary["fabric_bytes"] == off.summary["fabric_bytes"]


def test_a_narrower_decode_nic_slows_transfers_and_tpot_but_not_ttft() -> None:
    wide = run_experiment(make_experiment(
        workload__prompt_tokens={"kind": "fixed", "value": 6000}, decode__host_nic_gbps=800.0))
    narrow = run_experiment(make_experiment(
        workload__prompt_tokens={"kind": "fixed", "value": 6000}, decode__host_nic_gbps=50.0))
    assert narrow.summary["mean_ttft_ms"] == wide.summary["mean_ttft_ms"]
    assert narrow.summary["p50_transfer_ms"] > 10 * wide.summary["p50_transfer_ms"]
    assert narrow.summary["mean_tpot_ms"] > wide.summary["mean_tpot_ms"]
    assert narrow.summary["peak_link_utilization"] > wide.summary["peak_link_utilization"]
    assert narrow.summary["peak_link_utilization"] <= 1.0 + 1e-9


def test_fabric_sweep_prints_one_row_per_point_and_rejects_bad_input(tmp_path, capsys) -> None:
    import tomli_w
    from conftest import experiment_dict

    from disagg.experiments.compare.fabric_sweep import main

    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(experiment_dict(experiment__duration_s=2.0)))
    assert main([str(path), "--nic-gbps", "100", "400", "--layer-wise", "both"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 4 and lines[2].startswith("| 100.0 | off |")
    assert main([str(path), "--nic-gbps", "-5"]) == 2
    assert "host_nic_gbps" in capsys.readouterr().err

"""Percentile and slowdown SLOs (``[slo]``, cluster/slo.py, experiments/results/slo_eval.py):
reference latencies and attainment on hand-computed cases, config errors, and a virtual run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_experiment

from disagg.cluster import slo as slo_module
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.slo import SloConfig
from disagg.experiments.results.slo_eval import SloTally, reference_latencies
from disagg.experiments.run import run_experiment

# A model and a chip small enough to compute by hand: 1e9 parameters (2 bytes each), 2 layers,
# 2 KV heads x 32 dims (KV 2 x 2 x 32 x 2 = 256 B per token per layer); 1e14 FLOP/s and
# 1e12 B/s at efficiency 1, no fixed costs, one chip (no tensor-parallel traffic).
MODEL = ModelSpec(name="toy", layers=2, hidden_size=64, q_heads=2, kv_heads=2, head_dim=32,
                  ffn_size=128, vocab=100, total_params=1e9, active_params=1e9)
CHIP = HardwareProfile(name="toychip", peak_flops_bf16=1e14, memory_bytes=100e9,
                       memory_bandwidth_bytes_per_s=1e12, interconnect_bytes_per_s=1e11,
                       host_nic_bytes_per_s=1e10, compute_efficiency=1.0, memory_efficiency=1.0)
# prompt 1,000, output 101:
# TTFT alone = prefill FLOPs / peak (compute-bound: 2.000256e-2 s > memory 2.000512e-3 s)
#   = (2 x 1e9 x 1000 + 2 x 2 layers x 2 heads x 32 x 1000^2) / 1e14 = 2.000256e12 / 1e14
TTFT_REF = 2.000256e-2
# TPOT alone = one batch-1 decode step at context 1000 + 101/2 = 1050.5, memory-bound:
#   (2e9 weight bytes + 256 B x 2 layers x 1050.5) / 1e12 = 2.000537856e9 / 1e12
TPOT_REF = 2.000537856e-3
E2E_REF = TTFT_REF + 100 * TPOT_REF  # 100 tokens after the first


@pytest.fixture
def toy_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference unit 'toychip' resolves to CHIP (a test double for the catalog)."""
    monkeypatch.setattr(slo_module, "get_hardware", lambda name: CHIP)


def test_reference_latencies_by_hand(toy_catalog: None) -> None:
    ref = slo_module.ReferenceUnit(hardware="toychip", chips=1)
    alone = reference_latencies(np.array([1000]), np.array([101]), MODEL, ref)
    assert alone["ttft"][0] == pytest.approx(TTFT_REF, rel=1e-12)
    assert alone["tpot"][0] == pytest.approx(TPOT_REF, rel=1e-12)
    assert alone["e2e"][0] == pytest.approx(E2E_REF, rel=1e-12)


def test_slowdown_attainment_by_hand(toy_catalog: None) -> None:
    # 5 submitted requests (prompt 1,000, output 101); 4 completed with TTFT slowdowns 1.5, 3,
    # 6 and 12; one rejected (never within a target). Targets: p50 <= 3 and p90 <= 10.
    # p50: within 3 are 2 of 5 = 0.4 < 0.5 -> missed, share 0.4 / 0.5 = 0.8
    # p90: within 10 are 3 of 5 = 0.6 < 0.9 -> missed, share 0.6 / 0.9 = 2/3 -> attainment 2/3
    slo = SloConfig.model_validate({"ttft_s": 1, "tpot_s": 1, "slowdown": {
        "reference": {"hardware": "toychip"}, "metrics": ["ttft"], "p50": 3, "p90": 10}})
    tally = SloTally(slo, MODEL)
    factors = np.array([1.5, 3.0, 6.0, 12.0, np.nan])
    done = ~np.isnan(factors)
    n = len(factors)
    tally.add(["default"], np.zeros(n, dtype=np.int64), done, np.full(n, 1000),
              np.full(n, 101), {"ttft": factors * TTFT_REF, "tpot": np.full(n, np.nan),
                                "e2e": np.full(n, np.nan)})
    report = tally.report(completed_per_s=4.0)
    assert [r["target"] for r in report["slo_targets"]] == ["ttft_p50_slowdown",
                                                           "ttft_p90_slowdown"]
    assert [r["within_share"] for r in report["slo_targets"]] == pytest.approx([0.4, 0.6])
    assert report["slo_attainment"] == pytest.approx(2 / 3)
    assert report["slo_targets_met"] is False and report["request_goodput"] == 0.0
    # the p50 over submitted requests: the 2.5th of 5 -> between 3 and 6 (linear), so > 3
    assert report["slo_targets"][0]["value"] > 3.0


def test_percentile_targets_met_give_full_attainment_and_goodput() -> None:
    # absolute percentile targets: TTFT 0.1, 0.2, 0.3, 0.4 s; p75 <= 0.3 holds (3 of 4)
    slo = SloConfig.model_validate({"ttft_s": 1, "tpot_s": 1,
                                    "percentiles": {"ttft_p75_s": 0.3}})
    tally = SloTally(slo, MODEL)
    ttft = np.array([0.1, 0.2, 0.3, 0.4])
    tally.add(["default"], np.zeros(4, dtype=np.int64), np.ones(4, dtype=bool),
              np.full(4, 10), np.full(4, 2), {"ttft": ttft, "tpot": ttft, "e2e": ttft})
    report = tally.report(completed_per_s=2.0)
    assert report["slo_targets_met"] is True
    assert report["slo_attainment"] == 1.0 and report["request_goodput"] == 2.0


@pytest.mark.parametrize(("slo", "match"), [
    ({"percentiles": {"ttft_p100_s": 1}}, "percentile 100"),
    ({"percentiles": {"latency_p90_s": 1}}, "not a target name"),
    ({"slowdown": {"reference": {"hardware": "a100"}, "p50": 2}}, "unknown hardware"),
    ({"slowdown": {"reference": {"hardware": "a100-80gb"}, "p50": 0.5}}, "factor >= 1"),
])
def test_bad_slo_targets_name_the_field(slo: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_experiment(slo={"ttft_s": 1.0, "tpot_s": 0.02, **slo})


def test_uncontended_request_has_ttft_slowdown_one() -> None:
    # one request at a time on 1 x A100 prefill, reference = the same unit: its TTFT is the
    # prefill of its prompt alone, exactly what the reference computes -> slowdown 1
    exp = make_experiment(
        model="opt-13b", prefill__hardware="a100-80gb", prefill__chips_per_unit=1,
        prefill__units=1, decode__hardware="a100-80gb", decode__chips_per_unit=1,
        workload__rate_per_s=0.5, workload__arrivals={"kind": "constant"},
        workload__prompt_tokens={"kind": "fixed", "value": 512},
        workload__output_tokens={"kind": "fixed", "value": 16},
        slo={"ttft_s": 1.0, "tpot_s": 0.1, "slowdown": {
            "reference": {"hardware": "a100-80gb", "chips": 1}, "metrics": ["ttft"],
            "p50": 1.0, "p99": 1.0}})
    summary = run_experiment(exp).summary
    assert summary["completed"] == summary["submitted"] > 0
    assert [r["value"] for r in summary["slo_targets"]] == pytest.approx([1.0, 1.0], rel=1e-9)
    assert summary["slo_targets_met"] is True and summary["slo_attainment"] == 1.0

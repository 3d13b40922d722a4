"""Synthetic arrival shapes, mixes with per-class SLOs, empirical lengths, and closed-loop clients
(never more than N requests in flight, checked from the requests table on the virtual engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_experiment

from disagg.cluster.workload.plan import SloTargets, plan_requests
from disagg.cluster.workload.synthetic import (
    DiurnalArrivals,
    OnOffArrivals,
    arrival_times,
)
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONV = str(ROOT / "experiments" / "traces" / "azure_llm_2023_conv.csv")
SLO = SloTargets(1.0, 0.02)


def test_onoff_arrivals_only_inside_bursts_at_the_mean_rate() -> None:
    proc = OnOffArrivals(on_s=2.0, off_s=3.0)
    t = arrival_times(proc, np.random.default_rng(0), 10.0, 5_000.0)
    assert np.all(np.mod(t, 5.0) < 2.0)
    assert len(t) / 5_000.0 == pytest.approx(10.0, rel=0.03)


def test_diurnal_rate_follows_the_ramp() -> None:
    proc = DiurnalArrivals(period_s=100.0, amplitude=0.8)
    t = arrival_times(proc, np.random.default_rng(0), 50.0, 10_000.0)
    phase = np.mod(t, 100.0)
    trough = np.sum((phase < 10) | (phase >= 90))
    peak = np.sum((phase >= 40) & (phase < 60))
    assert len(t) / 10_000.0 == pytest.approx(50.0, rel=0.02)
    # the rate integrated over each 20 s window: 20 -+ a (period / 2 pi) 2 sin(2 pi / 10)
    swing = 0.8 * 100.0 / (2 * np.pi) * 2 * np.sin(2 * np.pi / 10)
    assert peak / trough == pytest.approx((20 + swing) / (20 - swing), rel=0.03)


def test_mix_draws_classes_by_weight_with_their_own_slos_and_lengths() -> None:
    exp = make_experiment(workload={
        "kind": "mix", "rate_per_s": 100.0,
        "classes": [
            {"name": "chat", "weight": 3, "prompt_tokens": {"kind": "fixed", "value": 100},
             "output_tokens": {"kind": "fixed", "value": 10}, "ttft_s": 0.5},
            {"name": "agent", "weight": 1, "prompt_tokens": {"kind": "fixed", "value": 9000},
             "output_tokens": {"kind": "fixed", "value": 50}, "tpot_s": 0.05},
        ]})
    reqs = plan_requests(exp.workload, SLO, 100.0, np.random.default_rng(0))
    chat = [r for r in reqs if r.slo_class == "chat"]
    agent = [r for r in reqs if r.slo_class == "agent"]
    assert len(chat) + len(agent) == len(reqs)
    assert len(chat) / len(reqs) == pytest.approx(0.75, abs=0.02)
    assert {(r.prompt_tokens, r.output_tokens, r.ttft_slo_s, r.tpot_slo_s) for r in chat} == {
        (100, 10, 0.5, 0.02)}
    assert {(r.prompt_tokens, r.output_tokens, r.ttft_slo_s, r.tpot_slo_s) for r in agent} == {
        (9000, 50, 1.0, 0.05)}


def test_empirical_lengths_come_from_the_trace() -> None:
    trace_prompts = set(make_experiment(workload={"kind": "trace", "path": CONV})
                        .workload.load().prompt_tokens.tolist())
    exp = make_experiment(workload={
        "rate_per_s": 50.0,
        "prompt_tokens": {"kind": "empirical", "path": CONV, "field": "prompt"},
        "output_tokens": {"kind": "empirical", "path": CONV, "field": "output", "max": 100}})
    reqs = plan_requests(exp.workload, SLO, 20.0, np.random.default_rng(0))
    assert len(reqs) > 500
    assert {r.prompt_tokens for r in reqs} <= trace_prompts
    assert max(r.output_tokens for r in reqs) == 100


def _max_in_flight(rows: list[dict]) -> int:
    """Most requests between arrival and end at any instant; an end frees its slot before an
    arrival at the same time."""
    events = []
    for r in rows:
        end = r["last_token_s"] if r["status"] == "completed" else r["arrival_s"]
        events += [(r["arrival_s"], 1), (end, -1)]
    level = peak = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("think_time_s", [0.0, 0.3])
def test_closed_loop_never_exceeds_n_in_flight(think_time_s: float) -> None:
    users = 4
    exp = make_experiment(
        experiment__duration_s=10.0, prefill__units=1,
        workload={"kind": "closed_loop", "users": users, "think_time_s": think_time_s,
                  "prompt_tokens": {"kind": "fixed", "value": 4000},
                  "output_tokens": {"kind": "fixed", "value": 50}})
    result = run_experiment(exp)
    rows = result.tables["requests"].to_pylist()
    assert len(rows) > 3 * users
    assert all(r["status"] == "completed" for r in rows)
    assert _max_in_flight(rows) == users  # saturated: exactly N, never more
    assert max(r["arrival_s"] for r in rows) < 10.0


def test_closed_loop_offered_load_falls_as_latency_rises() -> None:
    def submitted(units: int) -> int:
        exp = make_experiment(
            experiment__duration_s=20.0, prefill__units=units,
            workload={"kind": "closed_loop", "users": 8, "think_time_s": 0.2,
                      "prompt_tokens": {"kind": "fixed", "value": 4000},
                      "output_tokens": {"kind": "fixed", "value": 20}})
        return run_experiment(exp).summary["submitted"]

    assert submitted(1) < submitted(4)


def test_closed_loop_cap_and_classes() -> None:
    exp = make_experiment(workload={
        "kind": "closed_loop", "users": 3, "think_time_s": 0.1, "max_requests": 7,
        "classes": [{"name": "a", "weight": 1, "ttft_s": 0.7}, {"name": "b", "weight": 1}]})
    rows = run_experiment(exp).tables["requests"].to_pylist()
    assert len(rows) == 7
    assert {r["slo_class"] for r in rows} <= {"a", "b"}
    assert all(r["ttft_slo_s"] == (0.7 if r["slo_class"] == "a" else 1.0) for r in rows)


@pytest.mark.parametrize("name", ["azure_conv", "azure_code", "mix", "closed_loop_chat"])
def test_presets_validate_and_run_on_the_virtual_engine(name: str, tmp_path: Path) -> None:
    path = ROOT / "experiments" / f"{name}.toml"
    assert main(["validate", str(path)]) == 0
    code = main(["run", str(path), "--engine", "virtual", "--out", str(tmp_path / name)])
    assert code == 0
    assert (tmp_path / name / "requests.parquet").exists()

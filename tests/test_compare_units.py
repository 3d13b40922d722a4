"""The comparison's pieces alone: policy and rate parsing, confidence intervals, best-value
marking, router regret on a hand-made schedule, the latency breakdown."""

from __future__ import annotations

import math

import pytest
from conftest import make_experiment
from hypothesis import given
from hypothesis import strategies as st

from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.compare.data import capacity, estimate, t_critical
from disagg.experiments.compare.plots import PHASES, phase_durations_s
from disagg.experiments.compare.regret import request_regrets_s
from disagg.experiments.compare.runs import parse_policies, parse_rates
from disagg.experiments.compare.table import Column, build_rows
from disagg.experiments.run import run_experiment


def test_policies_parse_names_parameters_and_dotted_paths() -> None:
    a, b, c = parse_policies("round_robin, power_of_two:d=3:mode=fast:w=0.5,pkg.mod.Cls")
    assert (a.name, a.params, a.slug) == ("round_robin", {}, "round_robin")
    assert (b.name, b.params) == ("power_of_two", {"d": 3, "mode": "fast", "w": 0.5})
    assert b.slug == "power_of_two_d=3_mode=fast_w=0.5"
    assert (c.name, c.params) == ("pkg.mod.Cls", {})


@pytest.mark.parametrize("text", ["", "a,,b", "a:x", "a:=1", "a,a"])
def test_bad_policy_lists_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="^--policies"):
        parse_policies(text)


def test_rates_are_sorted_distinct_and_positive() -> None:
    assert parse_rates("4,1.5,4") == [1.5, 4.0]
    for bad in ["0", "-1", "x", "", "1e7"]:
        with pytest.raises(ConfigError, match="^--rates"):
            parse_rates(bad)


def test_confidence_interval_is_student_t() -> None:
    e = estimate([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.n == 3
    assert e.ci == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert estimate([5.0]).ci is None and estimate([1.0, None]).mean is None
    assert t_critical(1) == 12.706 and t_critical(30) == 2.042 and t_critical(500) == 1.960


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_interval_contains_the_mean_and_is_symmetric(values: list[float]) -> None:
    e = estimate(values)
    assert e.ci is not None and e.ci >= 0
    assert min(values) - 1e-6 <= e.mean <= max(values) + 1e-6


def _rows(values: dict[tuple[str, float], list[float]], key: str = "x") -> list[dict]:
    return [{"policy": p, "rate_per_s": r, "repeat": k, key: v}
            for (p, r), vs in values.items() for k, v in enumerate(vs)]


def test_best_is_marked_per_rate_and_ties_are_not() -> None:
    rows = _rows({("a", 1): [1, 1], ("b", 1): [2, 2], ("a", 2): [3, 3], ("b", 2): [3, 3]})
    low, high, neither = Column("x", "x"), Column("x", "x", better="max"), Column("x", "x", better=None)
    table = build_rows(rows, (low, high, neither))
    marks = {(r.policy, r.rate_per_s): [c.best for c in r.cells] for r in table}
    assert marks[("a", 1)] == [True, False, False] and marks[("b", 1)] == [False, True, False]
    assert marks[("a", 2)] == marks[("b", 2)] == [False, False, False]


def test_capacity_stops_at_the_first_rate_below_target() -> None:
    rows = _rows({("a", 1): [1.0], ("a", 2): [0.95], ("a", 3): [0.5], ("a", 4): [0.95],
                  ("b", 1): [0.5], ("b", 2): [0.99]}, key="slo_attainment")
    assert capacity(rows) == {"a": 2, "b": None}


def _row(rid: int, unit: str, arrival: float, start: float, end: float, tokens: int) -> dict:
    return {"request_id": rid, "prefill_unit": unit, "arrival_s": arrival, "prefill_start_s": start,
            "first_token_s": end, "prompt_tokens": tokens}


def test_regret_is_the_wait_a_free_unit_would_have_saved() -> None:
    exp = make_experiment()  # two prefill units
    model, hw, chips = exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit
    d0 = prefill_time([1000], model, hw, chips).seconds
    d1 = prefill_time([500], model, hw, chips).seconds
    # both arrive at 0 and go to prefill-0, one after the other; prefill-1 stays idle
    rows = [_row(0, "prefill-0", 0.0, 0.0, d0, 1000), _row(1, "prefill-0", 0.0, d0, d0 + d1, 500)]
    assert request_regrets_s(rows, exp) == pytest.approx([0.0, d0])
    # spread over both units: no regret
    rows = [_row(0, "prefill-0", 0.0, 0.0, d0, 1000), _row(1, "prefill-1", 0.0, 0.0, d1, 500)]
    assert request_regrets_s(rows, exp) == [0.0, 0.0]


def test_regret_finds_a_gap_that_fits_between_batches() -> None:
    exp = make_experiment()
    model, hw, chips = exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit
    d = prefill_time([200], model, hw, chips).seconds
    busy = prefill_time([4000], model, hw, chips).seconds
    rows = [
        _row(0, "prefill-1", 0.0, 0.0, busy, 4000),  # prefill-1: busy, then a gap of 2d, then busy
        _row(1, "prefill-1", 0.0, busy + 2 * d, 2 * busy + 2 * d, 4000),
        _row(2, "prefill-0", 0.0, 0.0, 3 * busy, 8000),  # prefill-0 busy for long
        _row(3, "prefill-0", busy, 3 * busy, 3 * busy + d, 200),  # r3 waited on prefill-0
    ]
    regrets = request_regrets_s(rows, exp)
    assert regrets[3] == pytest.approx(3 * busy + d - (busy + d))  # the gap on prefill-1 fits it


def test_phases_sum_to_the_end_to_end_latency() -> None:
    result = run_experiment(make_experiment(workload__rate_per_s=10.0))
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    assert rows
    for r in rows:
        phases = phase_durations_s(r)
        assert phases is not None and set(phases) == set(PHASES)
        assert all(v >= -1e-12 for v in phases.values())
        assert sum(phases.values()) == pytest.approx(r["e2e_s"], rel=1e-9, abs=1e-12)


def test_rates_cannot_be_set_on_a_closed_loop_workload() -> None:
    from pathlib import Path

    from disagg.cluster.config import load_experiment
    from disagg.experiments.compare.runs import plan_runs

    root = Path(__file__).resolve().parents[1] / "experiments"
    closed = load_experiment(root / "closed_loop_chat.toml")
    with pytest.raises(ConfigError, match="--rates"):
        plan_runs(closed, parse_policies("round_robin"), [5.0], 1)
    plans = plan_runs(closed, parse_policies("round_robin"), None, 1)
    assert plans[0].experiment.workload == closed.workload  # its own arrivals, unchanged


def test_a_rate_variant_of_a_trace_replaces_its_speedup() -> None:
    from pathlib import Path

    from disagg.cluster.config import load_experiment
    from disagg.experiments.compare.runs import variant

    root = Path(__file__).resolve().parents[1] / "experiments"
    trace = load_experiment(root / "azure_conv.toml")
    trace = trace.model_copy(update={"workload": trace.workload.model_copy(
        update={"speedup": 2.0, "rate_per_s": None})})
    [choice] = parse_policies("round_robin")
    v = variant(trace, choice, 7.0, 1, "virtual")
    assert v.workload.rate_per_s == 7.0 and v.workload.speedup is None

"""Property tests: generated small experiments on the virtual engine (rates, lengths, unit counts,
disaggregated or colocated, batch caps, prefix caching, faults) all satisfy the results
invariants (experiments/results/invariants.py); one small run on the shared Ray fixture too."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from disagg.cluster.config import Experiment, experiment_from_dict
from disagg.experiments.results.invariants import check_results
from disagg.experiments.run import run_experiment

# few examples, no shrinking (a run is ~0.3 s; a failing example is printed as it was drawn)
SETTINGS = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow])
POOL = {"hardware": "h100", "chips_per_unit": 1, "units_per_host": 1}


def _violations(exp: Experiment) -> list[str]:
    result = run_experiment(exp)
    assert result.summary["submitted"] == result.tables["requests"].num_rows
    return [v.describe() for v in check_results(exp, result.tables["requests"],
                                                result.tables["transfers"], result.summary)]


@st.composite
def lengths(draw: st.DrawFn, low: int, high: int) -> dict[str, Any]:
    """A fixed or lognormal length distribution within [low, high] tokens."""
    median = draw(st.integers(low, high))
    if draw(st.booleans()):
        return {"kind": "fixed", "value": median}
    return {"kind": "lognormal", "median": median, "sigma": 0.5, "min": low, "max": high}


@st.composite
def faults(draw: st.DrawFn, kind: str, units: int) -> list[dict[str, Any]]:
    """Zero or one fault a ``kind`` pool of ``units`` handles (cluster/faults.py)."""
    choice = draw(st.sampled_from(["none", "straggler", "unit_loss", "kv_drop"]
                                  if kind != "colocated" else ["none", "unit_loss"]))
    unit = f"{'decode' if kind == 'disagg' else kind}-{draw(st.integers(0, units - 1))}"
    if choice == "straggler":
        return [{"kind": "straggler", "unit": unit, "factor": 4.0, "from_s": 0.1, "to_s": 0.5}]
    if choice == "unit_loss" and units > 1:
        return [{"kind": "unit_loss", "unit": unit, "at_s": 0.3, "restart_after_s": 0.2}]
    if choice == "kv_drop":
        return [{"kind": "kv_drop", "requests": [0, 2]}]
    return []


@st.composite
def experiments(draw: st.DrawFn) -> Experiment:
    """A small virtual experiment: 8B model on H100s, under 1 emu s of arrivals."""
    kind = draw(st.sampled_from(["disagg", "colocated"]))
    units = draw(st.integers(1, 3))
    raw: dict[str, Any] = {
        "experiment": {"name": "prop", "seed": draw(st.integers(0, 1000)),
                       "duration_s": draw(st.sampled_from([0.3, 0.6, 1.0])),
                       "engine": "virtual"},
        "model": "llama-3.1-8b",
        "workload": {"rate_per_s": draw(st.sampled_from([5.0, 20.0, 60.0])),
                     "prompt_tokens": draw(lengths(16, 2048)),
                     "output_tokens": draw(lengths(1, 96))},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
        "faults": draw(faults(kind, units)),
    }
    if kind == "colocated":
        raw["colocated"] = {**POOL, "units": units, "max_running": draw(st.integers(1, 8)),
                            "token_budget": draw(st.sampled_from([256, 2048, 8192]))}
    else:
        raw["prefill"] = {**POOL, "units": draw(st.integers(1, 3))}
        raw["decode"] = {**POOL, "units": units}
        raw["fabric"] = {"layer_wise": draw(st.booleans())}
    return experiment_from_dict(raw)


@SETTINGS
@given(experiments())
def test_generated_experiments_keep_every_invariant(exp: Experiment) -> None:
    assert _violations(exp) == []


def test_a_colocated_run_of_one_token_outputs_has_no_inter_token_latency() -> None:
    """Regression found by the property test above: with every output 1 token long a colocated
    unit's iterations have no request decoding; their weight-0 ITL samples summed to 0 and the
    summary raised ZeroDivisionError. One-token outputs have no inter-token gap at all."""
    exp = experiment_from_dict({
        "experiment": {"name": "one-token", "seed": 0, "duration_s": 0.3, "engine": "virtual"},
        "model": "llama-3.1-8b", "colocated": {**POOL, "units": 1},
        "workload": {"rate_per_s": 20.0, "arrivals": {"kind": "constant"},
                     "prompt_tokens": {"kind": "fixed", "value": 16},
                     "output_tokens": {"kind": "fixed", "value": 1}},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
    })
    result = run_experiment(exp)
    assert result.summary["completed"] == result.summary["submitted"] >= 5
    assert result.summary["mean_itl_ms"] is None and result.summary["p99_itl_ms"] is None


@st.composite
def multi_turn(draw: st.DrawFn) -> Experiment:
    """A closed-loop multi-turn chat with prefix caching (and optionally decode_keep)."""
    keep = draw(st.booleans())
    raw: dict[str, Any] = {
        "experiment": {"name": "prefix", "seed": draw(st.integers(0, 1000)),
                       "duration_s": 1.0, "engine": "virtual"},
        "model": "llama-3.1-8b",
        "prefill": {**POOL, "units": draw(st.integers(1, 2))},
        "decode": {**POOL, "units": draw(st.integers(1, 2))},
        "workload": {"kind": "closed_loop", "users": draw(st.integers(1, 4)),
                     "think_time_s": 0.05, "multi_turn": True,
                     "prompt_tokens": {"kind": "fixed", "value": draw(st.sampled_from([64, 300]))},
                     "output_tokens": {"kind": "fixed", "value": draw(st.integers(2, 40))}},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
        "prefix_cache": {"enabled": True, "decode_keep": keep,
                         "transfer": draw(st.sampled_from(["full", "missing"])) if keep
                         else "full"},
    }
    return experiment_from_dict(raw)


@settings(SETTINGS, max_examples=6)
@given(multi_turn())
def test_prefix_cached_runs_keep_every_invariant(exp: Experiment) -> None:
    assert _violations(exp) == []


@pytest.mark.no_invariants  # asserted on directly
@settings(SETTINGS, max_examples=6)
@given(cap=st.integers(1, 4), seed=st.integers(0, 1000))
def test_a_capped_decode_batch_keeps_its_cap_under_load(cap: int, seed: int) -> None:
    """More requests than the cap reach one decode unit at once (60/s of 200-token outputs)."""
    exp = experiment_from_dict({
        "experiment": {"name": "capped", "seed": seed, "duration_s": 0.5, "engine": "virtual"},
        "model": "llama-3.1-8b",
        "prefill": {**POOL, "units": 2}, "decode": {**POOL, "units": 1},
        "workload": {"rate_per_s": 60.0, "prompt_tokens": {"kind": "fixed", "value": 256},
                     "output_tokens": {"kind": "fixed", "value": 200}},
        "slo": {"ttft_s": 10.0, "tpot_s": 1.0},
        "policies": {"decode_admission": {"name": "fcfs", "max_batch_requests": cap}},
    })
    assert _violations(exp) == []


@pytest.mark.ray
def test_a_ray_run_keeps_every_invariant(ray_cluster, tmp_path) -> None:
    """The same checks hold on the ray engine (wall clock, lag corrections): a small run with a
    generous batch cap, so no request waits for a place in a batch."""
    exp = experiment_from_dict({
        "experiment": {"name": "ray-inv", "seed": 5, "duration_s": 2.0, "engine": "ray"},
        "model": "llama-3.1-8b",
        "prefill": {**POOL, "units": 2}, "decode": {**POOL, "units": 2},
        "workload": {"rate_per_s": 10.0, "prompt_tokens": {"kind": "fixed", "value": 512},
                     "output_tokens": {"kind": "fixed", "value": 64}},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
        "output": {"payload_scale": 1e-4},
    })
    result = run_experiment(exp, tmp_path / "out")
    assert result.summary["completed"] == result.summary["submitted"] > 10
    assert [v.describe() for v in check_results(
        exp, result.tables["requests"], result.tables["transfers"], result.summary)] == []

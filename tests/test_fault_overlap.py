"""Overlapping faults on one target compose (issue 30): straggler factors and link factors
multiply while their windows overlap, and each window's end restores what the others still
impose — not full speed. The rule lives in the one schedule both engines play
(``cluster/faults.py``), so the ray engine receives the same composed actions. Expected times come
from the performance model and the windows by hand."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_experiment

from disagg.cluster.faults import FaultAction, fault_schedule
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment


def _entries(*raw: dict[str, Any]) -> list[Any]:
    return list(make_experiment(faults=list(raw)).faults)


def test_a_straggler_inside_another_multiplies_then_ends_in_order() -> None:
    schedule = fault_schedule(_entries(
        {"kind": "straggler", "unit": "prefill-0", "factor": 4, "from_s": 0.5, "to_s": 2.5},
        {"kind": "straggler", "unit": "prefill-0", "factor": 2, "from_s": 1.0, "to_s": 1.5}))
    assert [(a.at_s, a.factor) for a in schedule.actions] == [
        (0.5, 4.0), (1.0, 8.0), (1.5, 4.0), (2.5, 1.0)]  # x4 again after 1.5 s, x1 only at 2.5 s


def test_a_degrade_inside_a_cut_keeps_the_link_cut_until_the_cut_ends() -> None:
    link = "decode-host-0/ingress"
    schedule = fault_schedule(_entries(
        {"kind": "link", "link": link, "factor": 0, "from_s": 0.0, "to_s": 2.0},
        {"kind": "link", "link": link, "factor": 0.5, "from_s": 0.5, "to_s": 1.0},
        {"kind": "link", "link": link, "factor": 0.5, "from_s": 1.5, "to_s": 3.0}))
    # cut from 0 to 2 s whatever happens inside; then the last degrade alone (x0.5) until 3 s
    assert schedule.actions == (FaultAction(0.0, 0, "link", link, 0.0),
                                FaultAction(2.0, 0, "link", link, 0.5),
                                FaultAction(3.0, 2, "link", link, 1.0))


def test_windows_on_different_targets_do_not_compose() -> None:
    schedule = fault_schedule(_entries(
        {"kind": "straggler", "unit": "prefill-0", "factor": 2, "from_s": 1.0, "to_s": 2.0},
        {"kind": "straggler", "unit": "prefill-1", "factor": 3, "from_s": 1.0}))
    assert sorted((a.target, a.at_s, a.factor) for a in schedule.actions) == [
        ("prefill-0", 1.0, 2.0), ("prefill-0", 2.0, 1.0), ("prefill-1", 1.0, 3.0)]


def overlapping_stragglers(prompt: int, **over: Any) -> Any:
    """One prefill unit, one ``prompt``-token request a second, and a x2 straggler window
    (1.5-2.5 s) inside a x4 one (0.5-3.5 s): the schedule both engines' tests run."""
    return make_experiment(prefill__units=1, workload__rate_per_s=1.0,
                           workload__arrivals={"kind": "constant"},
                           workload__prompt_tokens={"kind": "fixed", "value": prompt},
                           workload__output_tokens={"kind": "fixed", "value": 20},
                           faults=[{"kind": "straggler", "unit": "prefill-0", "factor": 4,
                                    "from_s": 0.5, "to_s": 3.5},
                                   {"kind": "straggler", "unit": "prefill-0", "factor": 2,
                                    "from_s": 1.5, "to_s": 2.5}], **over)


def test_overlapping_stragglers_on_the_virtual_engine() -> None:
    prompt = 500
    exp = overlapping_stragglers(prompt)
    rows = run_experiment(exp).tables["requests"].to_pylist()
    one_s = prefill_time([prompt], exp.model, exp.prefill.hardware,
                         exp.prefill.chips_per_unit).seconds
    assert 8 * one_s < 1.0  # each prefill alone: one request per second
    factor_by_start = {1.0: 4.0, 2.0: 8.0, 3.0: 4.0, 4.0: 1.0}  # windows by hand
    seen = set()
    for r in rows:
        start = r["prefill_start_s"]
        key = min(factor_by_start, key=lambda t: abs(t - start))
        if abs(key - start) < 0.01:
            seen.add(key)
            assert r["first_token_s"] - start == pytest.approx(factor_by_start[key] * one_s,
                                                               rel=1e-9)
    assert seen == set(factor_by_start)  # x4 at 3 s: the inner end did not restore full speed


def test_a_degrade_inside_a_cut_on_the_virtual_engine() -> None:
    link = "decode-host-0/ingress"
    exp = make_experiment(workload__rate_per_s=8.0, faults=[
        {"kind": "link", "link": link, "factor": 0, "from_s": 1.0, "to_s": 2.0},
        {"kind": "link", "link": link, "factor": 0.5, "from_s": 1.2, "to_s": 1.5}])
    transfers = run_experiment(exp).tables["transfers"].to_pylist()
    late = [t for t in transfers if 1.5 <= t["start_s"] < 2.0]
    assert late, "a transfer starts after the degrade ended, inside the cut"
    # still cut until 2 s: nothing that started during the cut finishes before it ends
    assert all(t["modeled_end_s"] >= 2.0 + exp.fabric.latency_s - 1e-9
               for t in transfers if 1.0 <= t["start_s"] < 2.0)

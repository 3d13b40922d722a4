"""Overlapping stragglers on the ray engine (issue 30): the same composed schedule as on the
virtual engine (tests/test_fault_overlap.py) — x4, then x8 while a x2 window lies inside, then x4
again until the outer window ends. Expected durations from the performance model by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_fault_overlap import overlapping_stragglers

from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_overlapping_stragglers_on_the_ray_engine(ray_cluster, tmp_path: Path) -> None:
    prompt = 500
    exp = overlapping_stragglers(prompt, experiment__engine="ray")
    rows = run_experiment(exp, tmp_path / "out").tables["requests"].to_pylist()
    one_s = prefill_time([prompt], exp.model, exp.prefill.hardware,
                         exp.prefill.chips_per_unit).seconds
    def factor(start: float) -> float:  # the windows, by hand (a batch's start decides)
        return 8.0 if 1.5 <= start < 2.5 else 4.0 if 0.5 <= start < 3.5 else 1.0

    seen = set()
    for r in rows:
        start = r["prefill_start_s"]
        if r["status"] != "completed" or start is None:
            continue
        seen.add((factor(start), start >= 2.5))
        # at least the composed factor x the lone prefill (a late batch may hold two requests)
        assert r["first_token_s"] - start >= factor(start) * one_s * (1 - 1e-9)
    # x8 inside both windows, and x4 again after the inner one ended (not full speed)
    assert {(8.0, False), (4.0, True)} <= seen

"""Trace replay and closed-loop clients on the ray engine (shared Ray fixture): the trace's
arrivals come through unchanged, and the collector -> load generator loop works across actors."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workloads import _max_in_flight

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_azure_conv_replays_on_ray_as_on_virtual(ray_cluster) -> None:
    overrides = {"experiment.duration_s": 4.0, "workload.end_s": 1804.0}
    real = run_experiment(load_experiment(EXPERIMENTS / "azure_conv.toml", overrides))
    ref = run_experiment(load_experiment(EXPERIMENTS / "azure_conv.toml",
                                         {**overrides, "experiment.engine": "virtual"}))
    rows, ref_rows = (r.tables["requests"].to_pylist() for r in (real, ref))
    assert len(rows) == len(ref_rows) > 5
    keys = ("request_id", "arrival_s", "prompt_tokens", "output_tokens")
    assert [tuple(r[k] for k in keys) for r in rows] == [tuple(r[k] for k in keys) for r in ref_rows]
    assert all(r["status"] == "completed" for r in rows)


def test_closed_loop_on_ray_stays_within_n_users(ray_cluster) -> None:
    exp = load_experiment(EXPERIMENTS / "closed_loop_chat.toml",
                          {"experiment.duration_s": 4.0, "workload.users": 6,
                           "workload.think_time_s": 0.2})
    rows = run_experiment(exp).tables["requests"].to_pylist()
    assert len(rows) > 6
    assert all(r["status"] == "completed" for r in rows)
    assert _max_in_flight(rows) <= 6

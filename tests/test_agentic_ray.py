"""Agent sessions on the ray engine (shared Ray fixture): concurrent tasks' dependent calls go
round the collector -> load generator loop across actors, each task ends in one status and
no call is sent before its predecessor ended."""

from __future__ import annotations

import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_concurrent_agent_sessions_run_end_to_end_on_ray(ray_cluster, tmp_path) -> None:
    workload = {"kind": "agentic", "rate_per_s": 4.0, "arrivals": {"kind": "constant"},
                "max_tasks": 4, "calls_per_task": {"kind": "fixed", "value": 3},
                "first_prompt_tokens": {"kind": "fixed", "value": 1000},
                "new_tokens": {"kind": "fixed", "value": 200},
                "output_tokens": {"kind": "fixed", "value": 8},
                "delay_s": {"kind": "fixed", "value_s": 0.5}}
    exp = experiment_from_dict(experiment_dict(
        workload=workload, experiment__engine="ray", experiment__duration_s=6.0,
        slo={"ttft_s": 1.0, "tpot_s": 0.02, "task_s": 30.0}))
    result = run_experiment(exp, out_dir=tmp_path / "out")
    tasks = result.tables["tasks"].to_pylist()
    rows = {r["request_id"]: r for r in result.tables["requests"].to_pylist()}
    assert len(tasks) == 4 and len(rows) == 12
    assert all(t["status"] == "completed" and t["calls"] == 3 for t in tasks)
    for t in tasks:
        calls = [rows[i] for i in t["request_ids"]]
        for a, b in zip(calls, calls[1:], strict=False):
            assert b["arrival_s"] >= a["end_s"]  # the loop times the next call from the end
    first_ends = sorted(rows[t["request_ids"][-1]]["end_s"] for t in tasks)
    starts = sorted(t["start_s"] for t in tasks)
    # every task takes at least its two 0.5 s delays, so all four (started by 1 s) overlap
    assert starts[-1] < first_ends[0]
    assert result.summary["tasks_completed"] == 4

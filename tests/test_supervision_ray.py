"""Supervise everything (issue 12 item 3): killing a control-plane actor (collector, router,
fabric, load generator) from outside ends a ray-engine run within 10 s with exit 1, a message
naming the lost component, and the results so far written (requests without an end ``failed``
with reason ``emulator_component_lost``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray
from conftest import make_experiment

from disagg.experiments.cli.main import _run_exit
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("victim", ["collector", "router", "fabric", "loadgen"])
def test_a_lost_control_actor_ends_the_run_with_results(ray_cluster, tmp_path: Path, actor_handles,
                                                         capsys, victim: str) -> None:
    handles = actor_handles
    killed_at: list[float] = []

    def kill_after_first_completion(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not killed_at:
            killed_at.append(time.time())
            ray.kill(handles[victim], no_restart=True)

    # one actor per control component (not the default): each is lost by itself
    exp = make_experiment(experiment__engine="ray", experiment__duration_s=60.0,
                          experiment__drain_timeout_s=60.0, placement__one_control_actor=False)
    result = run_experiment(exp, tmp_path / "out", progress=kill_after_first_completion)
    assert killed_at and time.time() - killed_at[0] < 10.0
    assert _run_exit(result) == 1
    err = capsys.readouterr().err
    assert f"the emulator's {victim} component was lost" in err and str(tmp_path / "out") in err

    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == result.summary["submitted"] > 0
    assert result.summary["component_lost"] == victim
    assert {r["status"] for r in rows} <= {"completed", "rejected", "failed"}
    unended = [r for r in rows if r["reason"] == "emulator_component_lost"]
    assert unended and all(r["status"] == "failed" for r in unended)
    if victim != "collector":  # the collector held the statuses; the others leave them intact
        assert any(r["status"] == "completed" for r in rows)

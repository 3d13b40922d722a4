"""The Ray cluster's control store (GCS) gone mid-run (issue 30): the driver notices within a
couple of failure polls (actor calls keep working for a while without it, so only a direct
check does), ends the run with the rows it has drained written, leaves no hidden temporary
folder, and ``disagg run`` says so in one line and exits 1. Killing the shared test cluster's GCS
would break every later test, so the GCS check is made to fail (the driver's handling is what is
under test); the clean-up is bounded for when the GCS really is gone (GCS_CLOSE_S)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import make_experiment, own_lines

from disagg.actors.engines import supervisor
from disagg.experiments.cli.main import _run_exit
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_a_lost_gcs_ends_the_run_with_results_and_one_line(ray_cluster, tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    gone_at: list[float] = []
    monkeypatch.setattr(supervisor, "gcs_reachable", lambda address, timeout_s=1.0: not gone_at)

    def lose_gcs_after_first_completion(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not gone_at:
            gone_at.append(time.time())

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=60.0,
                          experiment__drain_timeout_s=60.0)
    out = tmp_path / "out"
    result = run_experiment(exp, out, progress=lose_gcs_after_first_completion)
    assert gone_at and time.time() - gone_at[0] < 15.0  # not the 60 s of arrivals
    assert result.summary["component_lost"] == "gcs"
    assert _run_exit(result) == 1
    assert own_lines(capsys.readouterr().err) == [
        f"disagg: error: the Ray cluster's control store (GCS) is gone; results so far in {out}"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no hidden temporary folder
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(rows) == result.summary["submitted"] > 0
    assert any(r["status"] == "completed" for r in rows)
    unended = [r for r in rows if r["reason"] == "emulator_component_lost"]
    assert unended and all(r["status"] == "failed" for r in unended)

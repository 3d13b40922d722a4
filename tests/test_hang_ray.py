"""Hung units are supervised (issue 29 item 2): a decode actor stopped with SIGSTOP (alive, but
answering nothing) is declared hung once its ping has gone unanswered for
``[placement] hang_timeout_s``, within 10 s, and handled as a lost unit: killed, its requests
redone on the other decode unit; the run ends with results and every request in one status."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import ray
from conftest import make_experiment

from disagg.actors.engines import supervisor as supervisor_module
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray

STATUSES = {"completed", "rejected", "failed", "cancelled"}


def test_a_stopped_decode_actor_is_declared_hung_and_lost(ray_cluster, tmp_path: Path,
                                                         actor_handles, monkeypatch) -> None:
    stopped: dict[str, float] = {}
    declared: dict[str, tuple[float, str]] = {}
    real_unit_down = supervisor_module.Supervisor.unit_down

    def record(sup: Any, name: str, why: str, at_s: float) -> None:
        declared.setdefault(name, (time.time(), why))
        real_unit_down(sup, name, why, at_s)

    monkeypatch.setattr(supervisor_module.Supervisor, "unit_down", record)

    def stop_decode_0(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not stopped:
            pid = ray.get(actor_handles["decode-0"].pid.remote())
            os.kill(pid, signal.SIGSTOP)
            stopped[str(pid)] = time.time()

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=15.0,
                          experiment__drain_timeout_s=60.0, decode__units=2,
                          placement__hang_timeout_s=3.0)
    try:
        result = run_experiment(exp, tmp_path / "out", progress=stop_decode_0)
    finally:
        for pid in stopped:  # the supervisor killed it; resume it in case it still runs
            _resume(int(pid))
    assert stopped, "no request completed before the run ended"
    assert "decode-0" in declared and declared["decode-0"][1].startswith("hung")
    assert declared["decode-0"][0] - min(stopped.values()) < 10.0
    assert "decode-0" in result.summary["lost_units"]
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == result.summary["submitted"] > 0
    assert {r["status"] for r in rows} <= STATUSES
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert any(r["status"] == "completed" for r in rows)


def test_serve_answers_503_while_a_unit_hangs_then_serves_on(ray_cluster, tmp_path: Path) -> None:
    from test_serve_engine_ray import _load, _stream, served

    exp = _load(**{"decode.units": 2, "placement.hang_timeout_s": 4.0,
                   "placement.failure_poll_s": 0.2})
    with served(exp, tmp_path / "out") as (runner, base, _ended):
        handles = runner.cluster.engine.handles
        pid = ray.get(handles["decode-0"].pid.remote())
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.time()
        try:
            codes: list[int] = []
            while time.time() - stopped_at < 30.0 and "decode-0" not in runner.cluster.engine.lost:
                codes.append(httpx.get(f"{base}/health", timeout=30.0).status_code)
            declared_s = time.time() - stopped_at
        finally:
            _resume(pid)
        after = httpx.get(f"{base}/health", timeout=30.0)
        got = _stream(base, 8)
    assert 503 in codes and declared_s < 10.0
    # declared lost: /health stays 503 naming it (the cluster is no longer the one configured,
    # docs/serve.md), while the other decode unit serves on
    assert after.status_code == 503 and "decode-0" in after.text
    assert (got.status, got.done, got.tokens) == (200, True, 8)
    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert rows[-1]["status"] == "completed" and rows[-1]["decode_unit"] == "decode-1"


def _resume(pid: int) -> None:
    """SIGCONT ``pid`` if it still runs (the supervisor has killed it by now)."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass

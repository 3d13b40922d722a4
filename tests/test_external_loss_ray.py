"""A unit actor killed from outside (an operator's ``kill -9`` of its process) is recovered and
reported exactly like an injected unit loss (issue 30): a console line, summary.json ``faults``
(``cause: external``), ``lost_units`` and ``redone``, and the ``redone_from`` column."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray
from conftest import make_experiment
from rich.console import Console

from disagg.experiments.view.console import summary_table
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_a_unit_killed_from_outside_is_reported_like_an_injected_loss(
        ray_cluster, tmp_path: Path, actor_handles: dict[str, Any]) -> None:
    killed: list[int] = []

    def kill_decode_after_first_completion(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not killed:
            pid = ray.get(actor_handles["decode-0"].pid.remote())
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=8.0,
                          decode__units=2, workload__rate_per_s=6.0)
    result = run_experiment(exp, tmp_path / "out", progress=kill_decode_after_first_completion)
    assert killed
    summary = result.summary
    assert "decode-0" in summary["lost_units"]
    external = [f for f in summary["faults"] if "decode-0 lost (cause: external" in f]
    assert len(external) == 1, summary["faults"]

    rows = pq.read_table(tmp_path / "out" / "requests.parquet").to_pylist()
    assert len(rows) == summary["submitted"] > 0
    assert all("redone_from" in r for r in rows)
    redone = [r for r in rows if r["attempts"] > 1]
    assert summary["redone"] == len(redone) == sum(r["redone_from"] is not None for r in rows)
    assert {r["redone_from"] for r in redone} <= set(summary["lost_units"])

    console = Console(record=True, width=200)
    console.print(summary_table(summary))
    text = console.export_text()
    assert "decode-0 lost (cause: external" in text and "lost units" in text
    if redone:
        assert "redone from prefill" in text


def test_a_node_lost_with_the_collector_names_the_units_it_took(
        ray_cluster, tmp_path: Path, actor_handles: dict[str, Any], capsys) -> None:
    from disagg.experiments.cli.main import _run_exit

    killed: list[str] = []

    def lose_collector_and_a_unit(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not killed:  # as a raylet going away takes both
            killed.extend(["collector", "prefill-1"])
            for name in killed:
                ray.kill(actor_handles[name], no_restart=True)

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=30.0,
                          experiment__drain_timeout_s=30.0)
    result = run_experiment(exp, tmp_path / "out", progress=lose_collector_and_a_unit)
    assert killed
    assert result.summary["component_lost"] == "collector"
    assert "prefill-1" in result.summary["lost_units"]
    assert any("prefill-1 lost (cause: external" in f for f in result.summary["faults"])
    assert _run_exit(result) == 1
    err = capsys.readouterr().err
    assert "the emulator's collector component was lost mid-run (units lost too: " in err
    assert "prefill-1" in err

"""The virtual engine's progress callback: with the live view off (``live_s`` = 0, what
``disagg run --no-live`` asks for) ``progress`` still gets the collector's counts, and no unit
reports its state to the collector (as on the ray engine); with it on, units do report."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_experiment

from disagg.actors.components.live_state import StateReport
from disagg.actors.engines import virtual
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.component import Component


def _run(live_s: float) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """Snapshots handed to ``progress``, state reports the collector got, and the raw results."""
    snaps: list[dict[str, Any]] = []
    reports = [0]

    def on_start(comps: dict[str, Component]) -> None:
        collector = comps["collector"]
        add = collector.handlers[StateReport]

        def counted(msg: StateReport) -> None:
            reports[0] += 1
            add(msg)

        collector.handlers[StateReport] = counted

    raw = run_virtual(make_experiment(), on_start=on_start, progress=snaps.append, live_s=live_s)
    return snaps, reports[0], raw


@pytest.fixture(autouse=True)
def _tick_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drain (and call ``progress``) at every look at the wall clock, so that a small run ticks."""
    monkeypatch.setattr(virtual, "DRAIN_S", 0.0)


def test_no_live_view_means_counts_and_no_unit_reports() -> None:
    snaps, reports, raw = _run(live_s=0.0)
    assert snaps, "progress was never called"
    assert reports == 0
    submitted = len(raw["requests"])
    for snap in snaps:
        ended = snap["completed"] + snap["rejected"] + snap["failed"] + snap["cancelled"]
        assert 0 <= ended <= submitted and snap["now_s"] >= 0


def test_live_view_makes_units_report() -> None:
    snaps, reports, _ = _run(live_s=0.25)
    assert snaps and reports > 0

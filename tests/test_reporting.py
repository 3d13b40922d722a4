"""Rate-limited load reports, on virtual time."""

from __future__ import annotations

import itertools
from typing import Any

from conftest import make_experiment

from disagg.actors.components.reporting import LoadReporter
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop, run_virtual
from disagg.cluster.messages import LoadReport


class _Router:
    def __init__(self) -> None:
        self.got: list[float] = []

    def send(self, msg: LoadReport) -> None:
        self.got.append(msg.sent_s)


def _run(interval: float, changes: list[float]) -> list[float]:
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    router = _Router()

    def make(t: float) -> LoadReport:
        return LoadReport("u", "decode", 0, 0, 0, 0.0, 1.0, 0.0, sent_s=t)

    reporter = LoadReporter(clock, interval, make)
    reporter.router = router

    async def drive() -> None:
        for t in changes:
            await clock.sleep_until(t)
            reporter.changed(t)
        await clock.sleep_until(max(changes) + 1.0)

    loop.run_until_complete(drive())
    loop.close()
    return router.got


def test_every_change_is_reported_without_an_interval() -> None:
    assert _run(0.0, [0.0, 0.001, 0.002]) == [0.0, 0.001, 0.002]


def test_changes_within_an_interval_fold_into_one_trailing_report() -> None:
    assert _run(0.01, [0.0, 0.002, 0.004, 0.05]) == [0.0, 0.01, 0.05]


def test_the_last_change_is_never_left_unreported() -> None:
    got = _run(0.01, [0.0, 0.003])
    assert got == [0.0, 0.01]


def _held(interval: float, steps: list[tuple[str, float]]) -> list[float]:
    """Drive ``hold``/``changed``/``flush`` at emu times (``flush`` carries no time)."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    router = _Router()
    reporter = LoadReporter(
        clock, interval, lambda t: LoadReport("u", "prefill", 0, 0, 0, 0.0, 1.0, 0.0, sent_s=t))
    reporter.router = router

    async def drive() -> None:
        for what, t in steps:
            await clock.sleep_until(t)
            if what == "flush":
                reporter.flush()
            else:
                getattr(reporter, what)(t)
        await clock.sleep_until(max(t for _, t in steps) + 1.0)

    loop.run_until_complete(drive())
    loop.close()
    return router.got


def test_a_held_change_superseded_at_the_same_instant_goes_as_one_report() -> None:
    # a batch ends at 1.0 (held) and the next starts at 1.0: one report, not end + trailing
    assert _held(0.005, [("changed", 0.0), ("hold", 1.0), ("changed", 1.0)]) == [0.0, 1.0]
    assert _held(0.0, [("hold", 1.0), ("changed", 1.0)]) == [1.0]


def test_a_held_change_is_reported_at_the_flush_and_only_once() -> None:
    assert _held(0.0, [("hold", 1.0), ("flush", 1.0), ("flush", 2.0)]) == [1.0]
    # with an interval the flushed change is rate-limited as any other
    assert _held(0.01, [("changed", 1.0), ("hold", 1.002), ("flush", 1.002)]) == [1.0, 1.01]


def _reports_by_unit(exp: Any) -> dict[str, list[float]]:
    """Every LoadReport the router receives on the virtual engine: unit -> sent_s in order."""
    got: dict[str, list[float]] = {}

    def on_start(comps: dict[str, Any]) -> None:
        router = comps["router"]
        deliver, post = router.deliver, router.post_report

        def wrapped(message: Any) -> None:
            if isinstance(message, LoadReport):
                got.setdefault(message.unit, []).append(message.sent_s)
            deliver(message)

        def posted(message: LoadReport) -> bool:  # a report the router takes as it arrives
            taken = post(message)
            if taken:
                got.setdefault(message.unit, []).append(message.sent_s)
            return taken
        router.deliver, router.post_report = wrapped, posted

    run_virtual(exp, on_start=on_start)
    return got


def test_a_unit_reports_each_modeled_instant_once() -> None:
    # every change reported (no interval), busy enough that batches follow each other and
    # requests join decode batches at boundaries where others finish
    exp = make_experiment(experiment__duration_s=20.0, experiment__load_report_interval_s=0.0,
                          workload__rate_per_s=6.0)
    got = _reports_by_unit(exp)
    assert {u[:3] for u in got} == {"pre", "dec"}
    for unit, sent in got.items():
        assert len(sent) > 10, unit
        assert all(a < b for a, b in itertools.pairwise(sent)), f"{unit}: an instant twice"

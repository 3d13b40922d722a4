"""Rate-limited load reports, on virtual time."""

from __future__ import annotations

from disagg.actors.components.reporting import LoadReporter
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
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

"""The event loop a component's clock hands over (``Clock.event_loop``) is the one running it:
the units and the fabric set their timers on it instead of asking ``asyncio.get_running_loop``,
which makes a system call per call (issue 27, ninth step)."""

from __future__ import annotations

import asyncio

from disagg.actors.engines.host import WallClock
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.component import Clock


class _StillClock(Clock):
    """A clock with no loop of its own (as a test's or the wall clock): the base class's rule."""

    def now(self) -> float:
        return 0.0

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s


def test_the_virtual_clock_hands_over_the_loop_that_runs_its_components() -> None:
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    seen: list[bool] = []

    async def component() -> None:
        seen.append(clock.event_loop() is asyncio.get_running_loop())
        fired = loop.create_future()
        clock.event_loop().call_later(2.0, lambda: fired.set_result(loop.time()))
        seen.append(await fired == 2.0)

    loop.run_until_complete(component())
    assert seen == [True, True]


def test_a_clock_without_a_loop_of_its_own_gives_the_running_loop() -> None:
    async def inside() -> bool:
        running = asyncio.get_running_loop()
        return _StillClock().event_loop() is running and WallClock().event_loop() is running

    assert asyncio.run(inside())

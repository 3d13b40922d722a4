"""The virtual engine: every component in one process and one asyncio loop on virtual time.

The loop's ``time()`` is emu time; whenever no callback is ready it jumps to the earliest timer, so
a run takes only the CPU time its events cost and is deterministic for a seed. A message is a
callback scheduled on the loop (after an optional modeled control-plane delay, FIFO per receiver).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from disagg.actors.components.live_state import LiveReporter
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.build import build_component, component_names
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.messages import UnitDown


class VirtualClock(Clock):
    """Emu time is the loop's virtual time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time()

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s - self.loop.time()


class LocalPeer:
    """Delivers messages to a component as loop callbacks, after ``delay_s`` of virtual time.
    Messages to or from a lost unit vanish (``alive`` False), as they would with its machine."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Component, delay_s: float) -> None:
        self.loop = loop
        self.target = target
        self.delay_s = delay_s
        self.alive = True
        self._fifo: deque[Any] = deque()

    def send(self, message: Any) -> None:
        if not self.alive:
            return
        if self.delay_s <= 0:
            self.loop.call_soon(self.target.deliver, message)
            return
        self._fifo.append(message)
        self.loop.call_later(self.delay_s, self._deliver_next)

    def _deliver_next(self) -> None:
        message = self._fifo.popleft()
        if self.alive:
            self.target.deliver(message)


class _Lost:
    """The peers of a lost unit: whatever it still tries to send goes nowhere."""

    def send(self, message: Any) -> None:
        return None


def _lose_unit(name: str, comps: dict[str, Component], peers: dict[str, LocalPeer],
               tasks: dict[str, asyncio.Task[None]], lost: set[str]) -> None:
    """Cut ``name`` off and tell the router, as the ray engine does when an actor dies."""
    lost.add(name)
    peers[name].alive = False
    comps[name].peers = {n: _Lost() for n in comps}
    tasks[name].cancel()
    ended = frozenset(comps["collector"].ended)  # type: ignore[attr-defined]
    now = comps["router"].clock.now()
    peers["router"].send(UnitDown(name, ended, now))


def _live_tick(loop: VirtualTimeLoop, comps: dict[str, Component],
               progress: Callable[[dict[str, Any]], None], live_s: float, lost: set[str]) -> None:
    """Every ``live_s`` wall seconds: fold the components' state reports into the collector (the
    engine does what the ray hosts' report loops do) and hand its snapshot to ``progress``.
    A lost unit reports no more, as its actor would not."""
    collector = comps["collector"]
    reporters = [LiveReporter(c) for n, c in comps.items() if n != "collector"]

    def tick() -> None:
        for reporter in reporters:
            if reporter.component.name in lost:
                continue
            report = reporter.next_report()
            if report is not None:
                collector.deliver(report)
        progress({"now_s": loop.time(), **collector.snapshot()})

    loop.set_tick(tick, live_s)


async def _drive(
    exp: Experiment, loop: VirtualTimeLoop,
    on_start: Callable[[dict[str, Component]], None] | None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
) -> dict[str, Any]:
    clock = VirtualClock(loop)
    store = LocalStore()
    delay = exp.experiment.control_delay_s
    comps = {n: build_component(exp, n, clock, store, delay) for n in component_names(exp)}
    peers = {n: LocalPeer(loop, c, delay) for n, c in comps.items()}
    for c in comps.values():
        c.connect(peers)  # type: ignore[arg-type]
    if on_start is not None:
        on_start(comps)
    named = {n: loop.create_task(c.run(), name=n) for n, c in comps.items()}
    tasks = list(named.values())
    lost: set[str] = set()
    for loss in exp.faults.unit_loss:
        loop.call_at(loss.at_s, _lose_unit, loss.unit, comps, peers, named, lost)
    if progress is not None:
        _live_tick(loop, comps, progress, live_s, lost)
    collector = comps["collector"]
    done = loop.create_task(collector.done.wait())  # type: ignore[attr-defined]
    last_arrival = comps["loadgen"].arrivals_end_s()  # type: ignore[attr-defined]
    deadline = loop.create_task(asyncio.sleep(last_arrival + exp.experiment.drain_timeout_s))
    try:
        while not done.done() and not deadline.done():
            finished, _ = await asyncio.wait(
                [done, deadline, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                if task in tasks and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                if task in tasks:
                    tasks.remove(task)
    finally:
        for task in [*tasks, done, deadline]:
            task.cancel()
        await asyncio.gather(*tasks, done, deadline, return_exceptions=True)
    return {"end_s": loop.time(), "lost_units": sorted(lost),
            "components": [c.results() for n, c in comps.items() if n not in lost]}


def run_virtual(
    exp: Experiment, on_start: Callable[[dict[str, Component]], None] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
) -> dict[str, Any]:
    """Run ``exp`` on virtual time; returns the raw component results and the end time.

    With ``progress``, every ``live_s`` wall seconds the components' state is folded into the
    collector and ``progress`` gets the collector's snapshot plus ``now_s`` (as on the ray engine).
    """
    loop = VirtualTimeLoop()  # type: ignore[abstract]
    errors: list[BaseException] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context.get("exception") or RuntimeError(context.get("message")))
        _loop.stop()

    loop.set_exception_handler(handler)
    try:
        raw = loop.run_until_complete(_drive(exp, loop, on_start, progress, live_s))
    except RuntimeError as e:
        if errors:
            raise errors[0] from e
        raise
    finally:
        loop.close()
    if errors:
        raise errors[0]
    raw["engine"] = "virtual"
    return raw

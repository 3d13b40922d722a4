"""The virtual engine: every component in one process and one asyncio loop on virtual time.

The loop's ``time()`` is emu time; whenever no callback is ready it jumps to the earliest timer, so
a run takes only the CPU time its events cost and is deterministic for a seed. A message is a
callback scheduled on the loop (after an optional modeled control-plane delay, FIFO per receiver).
Every ``drain_s`` wall seconds (between loop steps) the finished rows are drained from the
collector into the results sink, and the router forgets the requests that ended.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from disagg.actors.components.collector import Collector, Drained
from disagg.actors.components.live_state import LiveReporter
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.build import build_component, component_names
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.messages import RequestsEnded, UnitDown

Sink = Callable[[Drained], None]
DRAIN_S = 0.5
"""Wall seconds between drains of finished rows from the collector."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        self._tick: Callable[[], None] | None = None
        self._tick_every_s = 0.0
        self._next_tick_wall = 0.0

    def time(self) -> float:
        return self._virtual_now

    def set_tick(self, tick: Callable[[], None], every_wall_s: float) -> None:
        """Call ``tick`` between loop steps every ``every_wall_s`` seconds of *wall* time."""
        self._tick, self._tick_every_s = tick, every_wall_s
        self._next_tick_wall = time.monotonic() + every_wall_s

    def _run_once(self) -> None:
        if self._tick is not None and time.monotonic() >= self._next_tick_wall:
            self._next_tick_wall = time.monotonic() + self._tick_every_s
            self._tick()
        ready: deque[Any] = self._ready  # type: ignore[attr-defined]
        scheduled: list[Any] = self._scheduled  # type: ignore[attr-defined]
        if not ready:
            while scheduled and scheduled[0]._cancelled:
                handle = heapq.heappop(scheduled)
                handle._scheduled = False
            if scheduled:
                self._virtual_now = max(self._virtual_now, scheduled[0]._when)
            elif not self._stopping:  # type: ignore[attr-defined]
                raise RuntimeError("virtual engine deadlock: every task waits and no timer is set")
        super()._run_once()  # type: ignore[misc]


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


def _live_tick(comps: dict[str, Component], progress: Callable[[dict[str, Any]], None],
               now: Callable[[], float], lost: set[str]) -> Callable[[], None]:
    """Fold the components' state reports into the collector (the engine does what the ray
    hosts' report loops do) and hand its snapshot to ``progress``. A lost unit reports no more,
    as its actor would not."""
    collector = comps["collector"]
    reporters = [LiveReporter(c) for n, c in comps.items() if n != "collector"]

    def tick() -> None:
        for reporter in reporters:
            if reporter.component.name in lost:
                continue
            report = reporter.next_report()
            if report is not None:
                collector.deliver(report)
        progress({"now_s": now(), **collector.snapshot()})

    return tick


def drain_into(comps: dict[str, Component], sink: Sink, now_s: float, lost: set[str],
               final: bool = False) -> None:
    """Move the collector's finished rows and the components' final timeseries bins into
    ``sink``; the router forgets the requests that ended."""
    collector: Collector = comps["collector"]  # type: ignore[assignment]
    drained = collector.drain(final)
    if drained.ended_ids:
        comps["router"].deliver(RequestsEnded(tuple(drained.ended_ids), now_s))
    drained.series = [s for n, c in comps.items() if n not in lost for s in c.drain_series()]
    sink(drained)


def _ticks(loop: VirtualTimeLoop, comps: dict[str, Component], sink: Sink,
           live: Callable[[], None] | None, live_s: float, lost: set[str]) -> None:
    """Drain every ``DRAIN_S`` and report live every ``live_s`` wall seconds, between steps."""
    every = min(DRAIN_S, live_s) if live is not None else DRAIN_S
    next_live = [0.0]

    def tick() -> None:
        drain_into(comps, sink, loop.time(), lost)
        if live is not None and time.monotonic() >= next_live[0]:
            next_live[0] = time.monotonic() + live_s
            live()

    loop.set_tick(tick, every)


async def _drive(
    exp: Experiment, loop: VirtualTimeLoop,
    on_start: Callable[[dict[str, Component]], None] | None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
    sink: Sink | None = None,
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
    kept = Drained()
    sink = sink or kept.extend
    live = None if progress is None else _live_tick(comps, progress, loop.time, lost)
    _ticks(loop, comps, sink, live, live_s, lost)
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
    drain_into(comps, sink, loop.time(), lost, final=True)
    return {"end_s": loop.time(), "lost_units": sorted(lost), "requests": kept.rows,
            "transfers": kept.transfers, "series": kept.series,
            "components": [c.results() for n, c in comps.items() if n not in lost]}


def run_virtual(
    exp: Experiment, on_start: Callable[[dict[str, Component]], None] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
    sink: Sink | None = None,
) -> dict[str, Any]:
    """Run ``exp`` on virtual time; returns the raw component results and the end time.

    With ``progress``, every ``live_s`` wall seconds the components' state is folded into the
    collector and ``progress`` gets the collector's snapshot plus ``now_s`` (as on the ray engine).
    Finished request rows go to ``sink`` as the run goes; without one they are returned under
    ``requests`` and ``transfers`` (in memory).
    """
    loop = VirtualTimeLoop()
    errors: list[BaseException] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context.get("exception") or RuntimeError(context.get("message")))
        _loop.stop()

    loop.set_exception_handler(handler)
    try:
        raw = loop.run_until_complete(_drive(exp, loop, on_start, progress, live_s, sink))
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

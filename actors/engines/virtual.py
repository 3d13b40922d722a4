"""The virtual engine: every component in one process and one asyncio loop on virtual time.

The loop's ``time()`` is emu time; whenever no callback is ready it jumps to the earliest timer, so
a run takes only the CPU time its events cost and is deterministic for a seed. A message is a
callback scheduled on the loop (after an optional modeled control-plane delay, FIFO per receiver).
Every ``drain_s`` wall seconds (between loop steps) the finished rows are drained from the
collector into the results sink, and the router forgets the requests that ended.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from disagg.actors.components.collector import Drained
from disagg.actors.components.live_state import LiveReporter
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.build import build_component, component_names, experiment_faults
from disagg.actors.engines.faults import FaultPlayer
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster.component import Clock, Component, as_arrivals, as_ledger
from disagg.cluster.config import Experiment
from disagg.cluster.messages import RequestsEnded, UnitDown, UnitUp
from disagg.cluster.timegate import TimeGate

Sink = Callable[[Drained], None]
DRAIN_S = 0.5
"""Wall seconds between drains of finished rows from the collector."""


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
    Messages to or from a lost unit vanish (``alive`` False), as they would with its machine;
    a restarted unit gets the same peer pointed at its fresh component."""

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
            self.loop.call_soon(self._deliver_now, self.target, message)
            return
        self._fifo.append(message)
        self.loop.call_later(self.delay_s, self._deliver_next)

    def _deliver_now(self, target: Component, message: Any) -> None:
        if self.alive and target is self.target:
            target.deliver(message)

    def _deliver_next(self) -> None:
        if self._fifo:
            message = self._fifo.popleft()
            if self.alive:
                self.target.deliver(message)

    def cut(self) -> None:
        """The unit is lost: drop what is in flight to it and everything sent from now on."""
        self.alive = False
        self._fifo.clear()


def _virtual_gate(name: str, comp: Component) -> TimeGate:
    """The virtual engine's time gate for ``comp``: no hold; a late input raises."""
    return TimeGate.for_virtual(comp.unit.kind if comp.unit is not None else name)


class _Lost:
    """The peers of a lost unit: whatever it still tries to send goes nowhere."""

    def send(self, message: Any) -> None:
        return None


class VirtualRun:
    """One virtual-engine run's components, peers and tasks; the :class:`FaultHost` the fault
    schedule is played on (a unit is lost by cutting it off the loop, as the ray engine loses an
    actor, and restarted as a fresh component)."""

    def __init__(self, exp: Experiment, loop: VirtualTimeLoop) -> None:
        self.exp, self.loop = exp, loop
        self.clock = VirtualClock(loop)
        self.store = LocalStore()
        delay = exp.experiment.control_delay_s
        self.comps = {n: build_component(exp, n, self.clock, self.store, delay)
                      for n in component_names(exp)}
        self.peers = {n: LocalPeer(loop, c, delay) for n, c in self.comps.items()}
        for n, c in self.comps.items():
            c.connect(self.peers)  # type: ignore[arg-type]
            c.set_gate(_virtual_gate(n, c))
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.lost: set[str] = set()
        self.ledger = as_ledger(self.comps["collector"])
        self.arrivals = as_arrivals(self.comps["loadgen"])

    def start(self) -> None:
        """Start every component's activity."""
        for name, comp in self.comps.items():
            self.tasks[name] = self.loop.create_task(comp.run(), name=name)

    def kill_unit(self, unit: str, at_s: float) -> None:
        """Cut ``unit`` off and tell the router, as the ray engine does when an actor dies."""
        self.lost.add(unit)
        self.peers[unit].cut()
        self.comps[unit].peers = {n: _Lost() for n in self.comps}
        self.tasks[unit].cancel()
        self.peers["router"].send(UnitDown(unit, self.ledger.ended_ids(), at_s))

    def restart_unit(self, unit: str, at_s: float) -> None:
        """A fresh ``unit`` (empty queues) takes the lost one's place; the router hears of it."""
        comp = build_component(self.exp, unit, self.clock, self.store,
                               self.exp.experiment.control_delay_s)
        comp.connect(self.peers)  # type: ignore[arg-type]
        comp.set_gate(_virtual_gate(unit, comp))
        self.comps[unit] = comp
        self.peers[unit].target, self.peers[unit].alive = comp, True
        self.lost.discard(unit)
        self.tasks[unit] = self.loop.create_task(comp.run(), name=unit)
        self.peers["router"].send(UnitUp(unit, at_s))

    def send(self, component: str, message: Any) -> None:
        """Deliver an engine message (a fault) to ``component``."""
        self.peers[component].send(message)

    def play_faults(self, player: FaultPlayer) -> None:
        """Schedule each of the player's actions at its emu time on the loop."""
        at = player.next_at_s()
        if at is None:
            return

        def step() -> None:
            player.play_due(self.loop.time())
            self.play_faults(player)

        self.loop.call_at(at, step)


def _live_tick(run: VirtualRun, progress: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Fold the components' state reports into the collector (the engine does what the ray
    hosts' report loops do) and hand its snapshot to ``progress``. A lost unit reports no more,
    as its actor would not."""
    collector = run.comps["collector"]
    reporters = {n: LiveReporter(c) for n, c in run.comps.items() if n != "collector"}

    def tick() -> None:
        for name, reporter in reporters.items():
            if name in run.lost:
                continue
            if reporter.component is not run.comps[name]:  # restarted
                reporter = reporters[name] = LiveReporter(run.comps[name])
            report = reporter.next_report()
            if report is not None:
                collector.deliver(report)
        progress({"now_s": run.loop.time(), **collector.snapshot()})

    return tick


async def _wait(run: VirtualRun, stopped: asyncio.Future[None]) -> None:
    """Until every request has ended, the drain deadline, a stop request, or a component error."""
    exp, loop = run.exp, run.loop
    done = loop.create_task(run.ledger.done.wait())
    deadline = loop.create_task(
        asyncio.sleep(run.arrivals.arrivals_end_s() + exp.experiment.drain_timeout_s))
    waits: list[asyncio.Future[Any]] = [done, deadline, stopped]
    try:
        while not any(w.done() for w in waits):
            tasks = [t for t in run.tasks.values() if not t.done()]
            finished, _ = await asyncio.wait([*waits, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task not in waits and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    finally:
        pending = [*run.tasks.values(), done, deadline]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def drain_into(run: VirtualRun, sink: Sink, final: bool = False,
               unfinished: tuple[str, str] | None = None, arrivals: tuple[Any, ...] = ()) -> None:
    """Move the collector's finished rows and the components' final timeseries bins into
    ``sink``; the router forgets the requests that ended."""
    drained: Drained = run.ledger.drain(final, unfinished, arrivals)
    if drained.ended_ids and "router" not in run.lost:
        run.comps["router"].deliver(RequestsEnded(tuple(drained.ended_ids), run.loop.time()))
    drained.series = [s for n, c in run.comps.items() if n not in run.lost
                      for s in c.drain_series()]
    sink(drained)


def _ticks(run: VirtualRun, sink: Sink, live: Callable[[], None] | None, live_s: float) -> None:
    """Drain every ``DRAIN_S`` and report live every ``live_s`` wall seconds, between steps."""
    every = min(DRAIN_S, live_s) if live is not None else DRAIN_S
    next_live = [0.0]

    def tick() -> None:
        drain_into(run, sink)
        if live is not None and time.monotonic() >= next_live[0]:
            next_live[0] = time.monotonic() + live_s
            live()

    run.loop.set_tick(tick, every)


async def _drive(
    exp: Experiment, loop: VirtualTimeLoop,
    on_start: Callable[[dict[str, Component]], None] | None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
    stop: StopFlag | None = None, sink: Sink | None = None,
) -> dict[str, Any]:
    run = VirtualRun(exp, loop)
    if on_start is not None:
        on_start(run.comps)
    run.start()
    player = FaultPlayer(experiment_faults(exp), run)
    run.play_faults(player)
    kept = Drained()
    sink = sink or kept.extend
    live = None if progress is None else _live_tick(run, progress)
    _ticks(run, sink, live, live_s)
    stopped: asyncio.Future[None] = loop.create_future()
    if stop is not None:
        loop.set_stop(stop, lambda: None if stopped.done() else stopped.set_result(None))
    await _wait(run, stopped)
    raw: dict[str, Any] = {
        "end_s": loop.time(), "lost_units": sorted(run.lost), "faults": player.log,
        "components": [c.results() for n, c in run.comps.items() if n not in run.lost]}
    unsent: tuple[Any, ...] = ()
    if stopped.done() and stop is not None:
        unsent = tuple(run.arrivals.stop_arrivals())
        raw["unfinished"] = {"status": "cancelled", "reason": stop.reason}
    unfinished = raw.get("unfinished")
    drain_into(run, sink, final=True,
               unfinished=None if unfinished is None else (unfinished["status"], unfinished["reason"]),
               arrivals=unsent)
    raw.update(requests=kept.rows, transfers=kept.transfers, series=kept.series)
    return raw


def run_virtual(
    exp: Experiment, on_start: Callable[[dict[str, Component]], None] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, live_s: float = 0.25,
    stop: StopFlag | None = None, sink: Sink | None = None,
) -> dict[str, Any]:
    """Run ``exp`` on virtual time; returns the raw component results and the end time.

    With ``progress``, every ``live_s`` wall seconds the components' state is folded into the
    collector and ``progress`` gets the collector's snapshot plus ``now_s`` (as on the ray engine).
    Finished request rows go to ``sink`` as the run goes; without one they are returned under
    ``requests`` and ``transfers`` (in memory).
    """
    loop = VirtualTimeLoop()  # type: ignore[abstract]
    errors: list[BaseException] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context.get("exception") or RuntimeError(context.get("message")))
        _loop.stop()

    loop.set_exception_handler(handler)
    try:
        raw = loop.run_until_complete(
            _drive(exp, loop, on_start, progress, live_s, stop, sink))
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

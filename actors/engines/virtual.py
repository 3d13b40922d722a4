"""The virtual engine: every component in one process and one asyncio loop on virtual time.

The loop's ``time()`` is emu time; whenever no callback is ready it jumps to the earliest timer, so
a run takes only the CPU time its events cost and is deterministic for a seed. A message is a
callback scheduled on the loop (after an optional modeled control-plane delay, FIFO per receiver).
Every ``drain_s`` wall seconds (between loop steps) the finished rows are drained from the
collector into the results sink, and the router forgets the requests that ended.
:class:`VirtualEngine` is this engine behind the :class:`~disagg.actors.engines.engine.Engine`
interface; an exception in a component's handler or task ends the run as
:class:`~disagg.cluster.errors.ComponentFailed` naming it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from disagg.actors.components.collector import Drained
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.build import build_component
from disagg.actors.engines.engine import Ending, Progress, RunResults, Sink, run_engine
from disagg.actors.engines.faults import FaultPlayer
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.actors.engines.virtual_peers import (
    LocalPeer,
    Lost,
    PostingPeer,
    ReportInbox,
    VirtualClock,
    live_tick,
)
from disagg.cluster.component import Component, as_arrivals, as_ledger
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ComponentFailed
from disagg.cluster.facts import component_names, experiment_faults
from disagg.cluster.messages import RequestsEnded, UnitDown, UnitUp
from disagg.cluster.timegate import TimeGate

DRAIN_S = 0.5
"""Wall seconds between drains of finished rows from the collector."""


def _virtual_gate(name: str, comp: Component) -> TimeGate:
    """The virtual engine's time gate for ``comp``: no hold; a late input raises."""
    return TimeGate.for_virtual(comp.unit.kind if comp.unit is not None else name)


def _peer_class(comp: Component) -> type[LocalPeer]:
    """The peer class delivering to ``comp``: one that posts load reports to a component that
    takes them so (the router), else the plain one."""
    return PostingPeer if isinstance(comp, ReportInbox) else LocalPeer


class VirtualRun:
    """One virtual-engine run's components, peers and tasks; the :class:`FaultHost` the fault
    schedule is played on (a unit is lost by cutting it off the loop, as the ray engine loses an
    actor, and restarted as a fresh component). ``failed`` is set by the first component
    failure."""

    def __init__(self, exp: Experiment, loop: VirtualTimeLoop) -> None:
        self.exp, self.loop = exp, loop
        self.clock = VirtualClock(loop)
        self.store = LocalStore()
        self.failed: asyncio.Future[ComponentFailed] = loop.create_future()
        delay = exp.experiment.control_delay_s
        self.comps = {n: build_component(exp, n, self.clock, self.store, delay)
                      for n in component_names(exp)}
        self.peers = {n: _peer_class(c)(loop, c, delay, self.fail) for n, c in self.comps.items()}
        for n, c in self.comps.items():
            c.connect(self.peers)  # type: ignore[arg-type]
            c.set_gate(_virtual_gate(n, c))
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.lost: set[str] = set()
        self.ledger = as_ledger(self.comps["collector"])
        self.arrivals = as_arrivals(self.comps["loadgen"])

    def fail(self, failure: ComponentFailed) -> None:
        """The first component failure ends the run."""
        if not self.failed.done():
            self.failed.set_result(failure)

    def start(self) -> None:
        """Start every component's activity."""
        for name, comp in self.comps.items():
            self._start_task(name, comp)

    def _start_task(self, name: str, comp: Component) -> None:
        task = self.loop.create_task(comp.run(), name=name)
        task.add_done_callback(self._on_done)
        self.tasks[name] = task

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.fail(ComponentFailed.of(task.get_name(), task.exception()))  # type: ignore[arg-type]

    def kill_unit(self, unit: str, at_s: float) -> None:
        """Cut ``unit`` off and tell the router, as the ray engine does when an actor dies."""
        self.lost.add(unit)
        self.peers[unit].cut()
        self.comps[unit].peers = {n: Lost() for n in self.comps}
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
        self._start_task(unit, comp)
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

    def drain_into(self, sink: Sink, final: bool = False,
                   unfinished: tuple[str, str] | None = None,
                   arrivals: tuple[Any, ...] = ()) -> None:
        """Move the collector's finished rows and the components' final timeseries bins into
        ``sink``; the router forgets the requests that ended."""
        drained: Drained = self.ledger.drain(final, unfinished, arrivals)
        if drained.ended_ids and "router" not in self.lost and not final:  # (the run is over)
            self.comps["router"].deliver(RequestsEnded(tuple(drained.ended_ids), self.loop.time()))
        drained.series = [s for n, c in self.comps.items() if n not in self.lost
                          for s in c.drain_series()]
        sink(drained)


async def _wait(run: VirtualRun, stopped: asyncio.Future[None]) -> Ending:
    """Until every request has ended, the drain deadline, a stop request or a component failure;
    then every component's activity is cancelled."""
    loop = run.loop
    done = loop.create_task(run.ledger.done.wait())
    deadline = loop.create_task(
        asyncio.sleep(run.arrivals.arrivals_end_s() + run.exp.experiment.drain_timeout_s))
    try:
        await asyncio.wait([done, deadline, stopped, run.failed],
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [*run.tasks.values(), done, deadline]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if run.failed.done():
        failure = run.failed.result()
        return Ending("failed", component=failure.name, failure=failure)
    if stopped.done():
        return Ending("stopped")
    return Ending("done" if done.done() and not done.cancelled() else "deadline")


def _counts_tick(run: VirtualRun, progress: Progress) -> Callable[[], None]:
    """Hand ``progress`` the collector's snapshot (plus ``now_s``) and nothing more: no unit
    reports its state (``live_s`` = 0, as on the ray engine)."""
    collector: Any = run.comps["collector"]
    return lambda: progress({"now_s": run.loop.time(), **collector.snapshot()})


class VirtualEngine:
    """The virtual engine behind the :class:`~disagg.actors.engines.engine.Engine` interface.

    Finished rows go to ``sink`` every ``DRAIN_S`` wall seconds (kept in memory without one);
    with a ``progress`` callback the live picture is folded in every ``live_s`` wall seconds
    (``live_s`` = 0: ``progress`` gets the collector's counts every ``DRAIN_S``, and no unit
    reports its state). ``on_start`` sees the components before they start (tests)."""

    def __init__(self, exp: Experiment, sink: Sink | None = None, live_s: float = 0.25,
                 on_start: Callable[[dict[str, Component]], None] | None = None) -> None:
        self.exp, self.live_s, self.on_start = exp, live_s, on_start
        self.kept = Drained()
        self.sink: Sink = sink or self.kept.extend
        self.loop = VirtualTimeLoop()  # type: ignore[abstract]
        self.errors: list[BaseException] = []  # raised by callbacks no component owns
        self.loop.set_exception_handler(self._on_loop_error)
        self.run = VirtualRun(exp, self.loop)
        self.player = FaultPlayer(experiment_faults(exp), self.run)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(context.get("exception") or RuntimeError(context.get("message")))
        loop.stop()

    def start(self) -> None:
        """Create every component's task and schedule the faults (they run once waited on)."""
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        # inside the loop, as components and ``on_start`` may ask for the running loop
        if self.on_start is not None:
            self.on_start(self.run.comps)
        self.run.start()
        self.run.play_faults(self.player)

    def wait(self, stop: StopFlag | None = None, progress: Progress | None = None) -> Ending:
        """Run the loop until the run ends (see :class:`Ending`)."""
        live = None if progress is None else (live_tick(self.run, progress) if self.live_s > 0
                                              else _counts_tick(self.run, progress))
        every = min(DRAIN_S, self.live_s) if live is not None and self.live_s > 0 else DRAIN_S
        next_live = [0.0]

        def tick() -> None:
            self.run.drain_into(self.sink)
            if live is not None and time.monotonic() >= next_live[0]:
                next_live[0] = time.monotonic() + self.live_s
                live()

        self.loop.set_tick(tick, every)
        stopped: asyncio.Future[None] = self.loop.create_future()
        if stop is not None:
            self.loop.set_stop(stop, lambda: None if stopped.done() else stopped.set_result(None))
        ending: Ending = self._run_until(_wait(self.run, stopped))
        return Ending("stopped", stop.reason) if ending.kind == "stopped" and stop else ending

    def _run_until(self, coro: Any) -> Any:
        try:
            ending = self.loop.run_until_complete(coro)
        except RuntimeError as e:
            if self.errors:
                raise self.errors[0] from e
            raise
        if self.errors:
            raise self.errors[0]
        return ending

    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` inside the loop (components may ask for the running loop)."""
        async def call() -> Any:
            return fn(*args)

        return self._run_until(call())

    def stop_arrivals(self) -> tuple[Any, ...]:
        """The load generator submits nothing more; what it sent but did not yet report."""
        return tuple(self._in_loop(self.run.arrivals.stop_arrivals))

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> None:
        """See :meth:`Engine.drain`."""
        self._in_loop(self.run.drain_into, self.sink, final, unfinished, arrivals)

    def results(self, ending: Ending) -> RunResults:
        """The surviving components' results and the rows kept in memory (if no sink)."""
        return RunResults(
            "virtual", self.loop.time(),
            [c.results() for n, c in self.run.comps.items() if n not in self.run.lost],
            self.kept.rows, self.kept.transfers, self.kept.series, sorted(self.run.lost),
            self.player.report(self.loop.time()), ending=ending)

    def close(self) -> None:
        """Close the loop."""
        self.loop.close()


def run_virtual(
    exp: Experiment, on_start: Callable[[dict[str, Component]], None] | None = None,
    progress: Progress | None = None, live_s: float = 0.25,
    stop: StopFlag | None = None, sink: Sink | None = None,
) -> dict[str, Any]:
    """Run ``exp`` on virtual time; returns the raw results (``RunResults.as_raw``).

    With ``progress``, every ``live_s`` wall seconds the components' state is folded into the
    collector and ``progress`` gets the collector's snapshot plus ``now_s`` (as on the ray engine).
    Finished request rows go to ``sink`` as the run goes; without one they are returned under
    ``requests`` and ``transfers`` (in memory). A component failure raises
    :class:`ComponentFailed` once the rows reached so far are in ``sink``.
    """
    results = run_engine(VirtualEngine(exp, sink, live_s, on_start), stop, progress)
    if results.failure is not None:
        raise results.failure
    return results.as_raw()

"""What runs inside each Ray actor of the ray engine: a wall clock with dilation, the object store,
and :class:`ComponentHost`, the body of one actor hosting one component or several units (wrapped
by ``ray.remote`` only where it is created, in ``ray_start.py``); peers send through the actor's
:class:`~disagg.actors.engines.transport.Transport`."""

from __future__ import annotations

import asyncio
import functools
import os
import time
import zlib
from typing import Any

import ray

from disagg.actors.components.live_state import LiveReporter
from disagg.actors.engines.build import build_component
from disagg.actors.engines.host_roles import ArrivalsRole, GatewayRole, LedgerRole
from disagg.actors.engines.transport import Transport, prefetch_wait_wall_s
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ComponentFailed
from disagg.cluster.facts import closed_loop
from disagg.cluster.timegate import TimeGate


class WallClock(Clock):
    """Emu time from wall time: ``emu = (time.time() - t0) / dilation``."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.dilation = 1.0

    def now(self) -> float:
        return (time.time() - self.t0) / self.dilation

    def loop_delay_s(self, emu_s: float) -> float:
        return self.t0 + emu_s * self.dilation - time.time()


class RayPeer:
    """A message to another component as its own fire-and-forget actor call (benchmarks that
    drive one component directly; the engine's actors send through :class:`Transport`)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def send(self, message: Any) -> None:
        self.handle.deliver.remote(message)


class RayStore:
    """KV payloads go into Ray's object store once; the reference travels in messages."""

    holds_bytes = True  # payloads cross processes: real bytes, verified by checksum

    def put(self, value: Any) -> Any:
        return ray.put(value)

    async def get(self, ref: Any) -> Any:
        return await ref


class ComponentHost(LedgerRole, ArrivalsRole, GatewayRole):
    """The body of one Ray actor: hosts one component, or several units of one kind
    (``[placement] units_per_actor``), or the whole control plane, each with its own clock,
    peers, state and tasks; sends through one :class:`Transport`. The first exception a hosted
    component raises is kept as :class:`ComponentFailed` and raised by :meth:`ping` (and the
    collector's calls), so the driver gets it typed through ``ray.get``. The role-specific calls
    live in ``host_roles.py``."""

    def __init__(self, exp: Experiment, names: str | tuple[str, ...],
                 serving: bool = False) -> None:
        names = (names,) if isinstance(names, str) else tuple(names)
        self.exp, self.serving = exp, serving
        self.components = {n: self._build(n) for n in names}
        self.component = self.components[names[0]]  # the one component of a control actor
        self.clock = self.component.clock
        self.failure: ComponentFailed | None = None
        self.stopped: set[str] = set()  # components stopped by a fault (messages dropped)
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._started: tuple[float, float, float, float] | None = None
        self.transport: Transport | None = None
        self._cpu0_s = 0.0  # process CPU seconds when the run started

    def _named(self, name: str) -> Component:
        """Component ``name`` if this actor hosts it, else its only one (a control actor)."""
        return self.components.get(name, self.component)

    def _build(self, name: str) -> Component:
        return build_component(self.exp, name, WallClock(), RayStore(), serving=self.serving)

    def connect(self, handles: dict[str, Any], actor_of: dict[str, str] | None = None) -> str:
        """Peers by name (``actor_of``: each component's actor key, when actors host several);
        returns this actor's Ray node id."""
        open_loop = not closed_loop(self.exp)
        self.transport = Transport(handles, actor_of or {n: n for n in handles},
                                   self._deliver_local, frozenset(self.components),
                                   coalesce_records=open_loop and not self.serving,
                                   prefetch_wait_s=prefetch_wait_wall_s(self.exp, self.serving))
        for comp in self.components.values():
            comp.connect({n: self.transport.peer(n) for n in handles})
        return ray.get_runtime_context().get_node_id()

    def clock_probe(self) -> float:
        """This node's wall clock, for the driver's offset measurement."""
        return time.time()

    def ping(self) -> None:
        """Alive; raises the failure of a hosted component (:class:`ComponentFailed`)."""
        self.raise_failure()

    def pid(self) -> int:
        """The operating-system process id of the actor (for operators and tests)."""
        return os.getpid()

    def raise_failure(self) -> None:
        """Raise the first failure of a hosted component, if one failed."""
        if self.failure is not None:
            raise self.failure

    def _fail(self, name: str, error: BaseException) -> None:
        if self.failure is None:
            self.failure = ComponentFailed.of(name, error)

    def repoint(self, name: str, handle: Any) -> None:
        """Peer ``name`` was restarted as a fresh actor: send to ``handle`` from now on."""
        assert self.transport is not None
        self.transport.repoint(name, handle)


    def memory_rss_bytes(self) -> int:
        """Resident memory of this actor's process (Linux /proc), for sizing clusters."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def drain_series(self) -> list[dict[str, Any]]:
        """The components' timeseries bins that became final (``Component.drain_series``)."""
        return [s for c in self.components.values() for s in c.drain_series()]

    async def flush(self) -> None:
        """Send every held message and wait until the calls carrying records were handled
        (before the final drain, so that it carries everything)."""
        if self.transport is not None:
            await self.transport.flush()

    async def start(self, t0: float, dilation: float, offset_s: float = 0.0,
                    live_s: float = 0.0) -> None:
        """Start the components' activity; ``t0`` is the driver's, shifted by this node's offset.
        With ``live_s`` > 0 also report each one's state to the collector every ``live_s`` wall
        seconds when it changed (for the live view)."""
        self._started = (t0, dilation, offset_s, live_s)
        self._cpu0_s = time.process_time()
        for name in self.components:
            self._start_one(name)

    def _start_one(self, name: str) -> None:
        assert self._started is not None
        t0, dilation, offset_s, live_s = self._started
        comp = self.components[name]
        clock = comp.clock
        assert isinstance(clock, WallClock)
        clock.t0, clock.dilation = t0 + offset_s, dilation
        # the time gate: holds per edge (docs/cluster.md); none for disagg serve (wall-paced)
        hold_wall_s = 0.0 if self.serving else self.exp.experiment.hold_wall_s
        kind = comp.unit.kind if comp.unit is not None else name
        comp.set_gate(TimeGate.for_ray(kind, hold_wall_s, dilation))
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(comp.run())]
        if live_s > 0 and name != "collector":
            tasks.append(loop.create_task(self._report_loop(comp, LiveReporter(comp), live_s)))
        for task in tasks:
            task.add_done_callback(functools.partial(self._on_done, name))
        self._tasks[name] = tasks

    def stop_component(self, name: str) -> None:
        """A fault stopped unit ``name`` (its actor hosts others that go on): its activity ends
        and messages to it are dropped, as if its machine went away."""
        for task in self._tasks.pop(name, []):
            task.cancel()
        self.stopped.add(name)

    async def restart_component(self, name: str) -> None:
        """A fresh unit ``name`` in place of a stopped one, connected to the same peers."""
        assert self.transport is not None
        self.components[name] = comp = self._build(name)
        comp.connect({n: self.transport.peer(n) for n in self.transport.handles})
        self.stopped.discard(name)
        self._start_one(name)

    async def _report_loop(self, comp: Component, reporter: LiveReporter, live_s: float) -> None:
        # a phase per component, so that reports do not all wake their actors at the same moment
        await asyncio.sleep(live_s * (zlib.crc32(comp.name.encode()) % 1000) / 1000)
        while True:
            await asyncio.sleep(live_s)
            report = reporter.next_report()
            if report is not None:
                comp.peers["collector"].send(report)

    def _on_done(self, name: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(name, task.exception())  # type: ignore[arg-type]

    def _deliver_local(self, name: str, message: Any) -> None:
        if name in self.stopped:
            return
        try:
            self.components[name].deliver(message)
        except Exception as e:  # noqa: BLE001 - raised to the driver by ping()
            self._fail(name, e)

    async def deliver(self, message: Any, name: str | None = None) -> None:
        """One message from the driver to component ``name`` (the only one, by default)."""
        self._deliver_local(name or self.component.name, message)

    async def deliver_batch(self, items: list[tuple[str, Any]]) -> None:
        """Messages from another actor's transport, handled in the order they were sent."""
        for name, message in items:
            self._deliver_local(name, message)

    async def results(self) -> list[dict[str, Any]]:
        """Every hosted component's results (stopped ones included); the first also carries
        this actor's transport counts."""
        for tasks in self._tasks.values():
            for task in tasks:
                task.cancel()
        parts = [c.results() for c in self.components.values()]
        if self.transport is not None:
            parts[0]["transport"] = self.transport.stats.as_dict()
        # this actor process's CPU seconds since the run started (for the fidelity benchmark)
        parts[0]["cpu_s"] = time.process_time() - self._cpu0_s
        return parts

"""What runs inside each Ray actor of the ray engine: a wall clock with dilation, peers that are
actor calls, the object store, and :class:`ComponentHost`, the body of one actor hosting one
component (wrapped by ``ray.remote`` only where it is created, in ``ray_engine.py``)."""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import ray

from disagg.actors.components.live_state import LiveReporter
from disagg.actors.engines.build import build_component
from disagg.cluster.component import Clock, as_arrivals, as_ledger
from disagg.cluster.config import Experiment


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
    """A message to another component is a fire-and-forget actor call."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def send(self, message: Any) -> None:
        self.handle.deliver.remote(message)


class RayStore:
    """KV payloads go into Ray's object store once; the reference travels in messages."""

    def put(self, value: Any) -> Any:
        return ray.put(value)

    async def get(self, ref: Any) -> Any:
        return await ref


class ComponentHost:
    """The body of one Ray actor: hosts one component and records its errors."""

    def __init__(self, exp: Experiment, name: str, serving: bool = False) -> None:
        self.clock = WallClock()
        self.component = build_component(exp, name, self.clock, RayStore(), serving=serving)
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._reports: asyncio.Task[None] | None = None
        self._collector: Any = None
        self._cpu0_s = 0.0  # process CPU seconds when the run started

    def connect(self, handles: dict[str, Any]) -> str:
        self.component.connect({n: RayPeer(h) for n, h in handles.items()})
        self._collector = handles.get("collector")
        return ray.get_runtime_context().get_node_id()

    def clock_probe(self) -> float:
        """This node's wall clock, for the driver's offset measurement."""
        return time.time()

    def ping(self) -> list[str]:
        """Alive: the errors the component has raised so far (the supervisor raises on any)."""
        return list(self.errors)

    def repoint(self, name: str, handle: Any) -> None:
        """Peer ``name`` was restarted as a fresh actor: send to ``handle`` from now on."""
        self.component.peers[name] = RayPeer(handle)
        if name == "collector":
            self._collector = handle

    def memory_rss_bytes(self) -> int:
        """Resident memory of this actor's process (Linux /proc), for sizing clusters."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def ended_ids(self) -> list[int]:
        """Collector only: the requests that have ended so far."""
        return sorted(as_ledger(self.component).ended_ids())

    def stop_arrivals(self) -> tuple[Any, ...]:
        """Load generator only: submit nothing more (an interrupted run); the requests sent but
        not yet reported to the collector."""
        return as_arrivals(self.component).stop_arrivals()

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> Any:
        """Collector only: the rows finished since the last drain (``Collector.drain``)."""
        return as_ledger(self.component).drain(final, unfinished, arrivals)

    def drain_series(self) -> list[dict[str, Any]]:
        """The component's timeseries bins that became final (``Component.drain_series``)."""
        return self.component.drain_series()

    async def start(self, t0: float, dilation: float, offset_s: float = 0.0,
                    live_s: float = 0.0) -> None:
        """Start the component's activity; ``t0`` is the driver's, shifted by this node's offset.
        With ``live_s`` > 0 also report its state to the collector every ``live_s`` wall seconds
        when it changed (for the live view)."""
        self.clock.t0, self.clock.dilation = t0 + offset_s, dilation
        self._cpu0_s = time.process_time()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.component.run())
        self._task.add_done_callback(self._on_done)
        if live_s > 0 and self.component.name != "collector":
            self._reports = loop.create_task(self._report_loop(LiveReporter(self.component), live_s))
            self._reports.add_done_callback(self._on_done)

    async def _report_loop(self, reporter: LiveReporter, live_s: float) -> None:
        # a phase per component, so that reports do not all wake their actors at the same moment
        await asyncio.sleep(live_s * (zlib.crc32(self.component.name.encode()) % 1000) / 1000)
        while True:
            await asyncio.sleep(live_s)
            report = reporter.next_report()
            if report is not None:
                self._collector.deliver.remote(report)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(f"{self.component.name}: {task.exception()!r}")

    async def deliver(self, message: Any) -> None:
        try:
            self.component.deliver(message)
        except Exception as e:  # noqa: BLE001 - reported to the driver, which raises
            self.errors.append(f"{self.component.name}: {e!r}")

    async def wait_done(self, timeout_s: float) -> bool:
        """Collector only: True once every submitted request has ended."""
        try:
            await asyncio.wait_for(as_ledger(self.component).done.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True

    async def status(self) -> dict[str, Any]:
        return {"errors": list(self.errors), "snapshot": self.component.snapshot(),
                "now_s": self.clock.now()}

    async def last_arrival_s(self) -> float:
        return float(as_arrivals(self.component).arrivals_end_s())

    async def results(self) -> dict[str, Any]:
        for task in (self._task, self._reports):
            if task is not None:
                task.cancel()
        out = self.component.results()
        out["errors"] = list(self.errors)
        # this actor process's CPU seconds since the run started (for the fidelity benchmark)
        out["cpu_s"] = time.process_time() - self._cpu0_s
        return out

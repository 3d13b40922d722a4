"""The ray engine: one Ray async actor per component, on wall-clock time with dilation.

Every actor declares ``num_cpus=0`` and a custom resource named after the hardware it emulates
(``trainium2``, ``cs3``, ...; control-plane components use ``disagg_control``), so many actors fit
on a small machine and, on a cluster, units land on nodes that advertise their hardware.
``ray.init()`` with no address starts an embedded local Ray; ``RAY_ADDRESS`` or ``address`` joins
an existing cluster.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import ray

from disagg.actors.components.collector import Drained
from disagg.actors.components.live_state import LiveReporter
from disagg.actors.engines.build import CONTROL, build_component, component_names
from disagg.actors.engines.clock_sync import measure_offsets
from disagg.actors.engines.placement import (
    CONTROL_RESOURCE,
    Placement,
    local_resources,
    stage_package,
)
from disagg.actors.engines.supervisor import RayEngineError, Supervisor
from disagg.cluster.component import Clock
from disagg.cluster.config import Experiment
from disagg.cluster.messages import RequestsEnded
from disagg.cluster.records import with_nodes

__all__ = ["CONTROL_RESOURCE", "ComponentHost", "RayEngineError", "local_resources", "run_ray"]


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

    def __init__(self, exp: Experiment, name: str) -> None:
        self.clock = WallClock()
        self.component = build_component(exp, name, self.clock, RayStore())
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._reports: asyncio.Task[None] | None = None
        self._collector: Any = None

    def connect(self, handles: dict[str, Any]) -> str:
        self.component.connect({n: RayPeer(h) for n, h in handles.items()})
        self._collector = handles.get("collector")
        return ray.get_runtime_context().get_node_id()

    def clock_probe(self) -> float:
        """This node's wall clock, for the driver's offset measurement."""
        return time.time()

    def ping(self) -> bool:
        return True

    def memory_rss_bytes(self) -> int:
        """Resident memory of this actor's process (Linux /proc), for sizing clusters."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def drain(self, final: bool = False) -> Any:
        """Collector only: the rows finished since the last drain (``Collector.drain``)."""
        return self.component.drain(final)  # type: ignore[attr-defined]

    def drain_series(self) -> list[dict[str, Any]]:
        """The component's timeseries bins that became final (``Component.drain_series``)."""
        return self.component.drain_series()

    def ended_ids(self) -> list[int]:
        """Collector only: the requests that have ended so far."""
        return list(self.component.ended)  # type: ignore[attr-defined]

    async def start(self, t0: float, dilation: float, offset_s: float = 0.0,
                    live_s: float = 0.0) -> None:
        """Start the component's activity; ``t0`` is the driver's, shifted by this node's offset.
        With ``live_s`` > 0 also report its state to the collector every ``live_s`` wall seconds
        when it changed (for the live view)."""
        self.clock.t0, self.clock.dilation = t0 + offset_s, dilation
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
            await asyncio.wait_for(self.component.done.wait(), max(timeout_s, 0.0))  # type: ignore[attr-defined]
        except TimeoutError:
            return False
        return True

    async def status(self) -> dict[str, Any]:
        return {"errors": list(self.errors), "snapshot": self.component.snapshot(),
                "now_s": self.clock.now()}

    async def last_arrival_s(self) -> float:
        return float(self.component.arrivals_end_s())  # type: ignore[attr-defined]

    async def results(self) -> dict[str, Any]:
        for task in (self._task, self._reports):
            if task is not None:
                task.cancel()
        out = self.component.results()
        out["errors"] = list(self.errors)
        return out


def _init(exp: Experiment, address: str | None) -> bool:
    """Connect to or start Ray; True if this call started (and so must shut down) Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": True}
    if address:
        if exp.placement.ship_code:
            common["runtime_env"] = {"py_modules": [str(stage_package())]}
        ray.init(address=address, **common)
    else:
        ray.init(resources=local_resources(exp), **common)
    return True


def _node_ips() -> dict[str, str]:
    return {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}


def run_ray(
    exp: Experiment, address: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.5,
    live_s: float = 0.0, sink: Callable[[Drained], None] | None = None,
) -> dict[str, Any]:
    """Run ``exp`` with one actor per component; returns raw component results.

    ``progress`` gets the collector's snapshot (plus ``now_s``) every ``poll_s`` wall seconds; with
    ``live_s`` > 0 every component reports its state to the collector at most that often (wall s),
    so the snapshot carries the live picture, and the collector is polled every ``live_s``.
    Each poll drains the collector's finished rows into ``sink`` (kept in memory under
    ``requests`` and ``transfers`` without one).
    """
    poll_s = live_s if live_s > 0 else poll_s
    started = _init(exp, address)
    handles: dict[str, Any] = {}
    placement: Placement | None = None
    lost: dict[str, str] = {}
    kept = Drained()
    nodes: dict[str, str] = {}
    try:
        placement = Placement(exp, ray.cluster_resources())
        host_cls = ray.remote(ComponentHost)
        for name in component_names(exp):
            handles[name] = host_cls.options(**placement.options(name)).remote(exp, name)
        nodes = dict(zip(handles, ray.get([h.connect.remote(handles) for h in handles.values()]),
                         strict=True))
        offsets = measure_offsets(nodes, handles)
        dilation = exp.experiment.dilation
        t0 = time.time() + exp.experiment.start_margin_s
        ray.get([h.start.remote(t0, dilation, offsets[nodes[n]].offset_s, live_s)
                 for n, h in handles.items()])
        last = ray.get(handles["loadgen"].last_arrival_s.remote())
        deadline = t0 + (last + exp.experiment.drain_timeout_s) * dilation
        drain = _drainer(handles, nodes, sink or kept.extend, t0, dilation, lost)
        Supervisor(exp, handles, t0, lost).wait(deadline, poll_s, progress, drain)
        drain(True)
        parts = _gather(handles, lost)
    finally:
        for h in handles.values():
            ray.kill(h)
        if placement is not None:
            placement.release()
        ips = _node_ips() if ray.is_initialized() else {}
        if started:
            ray.shutdown()
    errors = [e for p in parts for e in p.get("errors", [])]
    if errors:
        raise RayEngineError("; ".join(errors[:3]))
    return {
        "engine": "ray", "end_s": (time.time() - t0) / dilation, "components": parts,
        "requests": kept.rows, "transfers": kept.transfers, "series": kept.series,
        "lost_units": sorted(lost), "placement_mode": placement.mode,
        "placement": {n: {"node_id": nodes[n], "node_ip": ips.get(nodes[n], "")} for n in nodes},
        "clock": {node: {"offset_ms": o.offset_s * 1e3, "uncertainty_ms": o.uncertainty_s * 1e3}
                  for node, o in offsets.items()},
    }


def _drainer(handles: dict[str, Any], nodes: dict[str, str], sink: Callable[[Drained], None],
             t0: float, dilation: float, lost: dict[str, str]) -> Callable[[bool], None]:
    """A drain of the collector's finished rows (transfers with their Ray nodes) and of the
    components' final timeseries bins into ``sink``; the router forgets the requests that ended.
    A unit lost meanwhile contributes no bins this time (the supervisor notices it)."""

    def drain(final: bool = False) -> None:
        drained: Drained = ray.get(handles["collector"].drain.remote(final))
        if drained.ended_ids:
            handles["router"].deliver.remote(
                RequestsEnded(tuple(drained.ended_ids), (time.time() - t0) / dilation))
        with_nodes(drained.transfers, nodes)
        refs = [h.drain_series.remote() for n, h in handles.items() if n not in lost]
        try:
            drained.series = [s for part in ray.get(refs) for s in part]
        except ray.exceptions.RayActorError:
            pass  # a unit was lost: this drain's bins are dropped (a gap in the timeseries)
        sink(drained)

    return drain


def _gather(handles: dict[str, Any], lost: dict[str, str]) -> list[dict[str, Any]]:
    """Every surviving component's results (a unit lost at the very end is recorded as lost)."""
    parts = []
    for name, h in handles.items():
        if name in lost:
            continue
        try:
            parts.append(ray.get(h.results.remote(), timeout=60))
        except ray.exceptions.RayActorError as e:
            if name in CONTROL:
                raise RayEngineError(f"control component {name} was lost: {e}") from None
            lost[name] = "lost before results were gathered"
    return parts

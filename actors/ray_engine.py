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

from disagg.actors.build import component_names, build_component
from disagg.actors.live_state import LiveReporter
from disagg.cluster.component import Clock
from disagg.cluster.config import Experiment

CONTROL_RESOURCE = "disagg_control"


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

    async def start(self, t0: float, dilation: float, live_s: float = 0.0) -> None:
        """Start the component at wall time ``t0``; with ``live_s`` > 0 also report its state to
        the collector every ``live_s`` wall seconds when it changed (for the live view)."""
        self.clock.t0, self.clock.dilation = t0, dilation
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
        requests = getattr(self.component, "requests", [])
        return float(requests[-1].arrival_s) if requests else 0.0

    async def results(self) -> dict[str, Any]:
        for task in (self._task, self._reports):
            if task is not None:
                task.cancel()
        out = self.component.results()
        out["errors"] = list(self.errors)
        return out


def _resource_for(name: str, exp: Experiment) -> dict[str, float]:
    if name.startswith("prefill-"):
        return {exp.prefill.hardware.name: float(exp.prefill.chips_per_unit)}
    if name.startswith("decode-"):
        return {exp.decode.hardware.name: float(exp.decode.chips_per_unit)}
    return {CONTROL_RESOURCE: 1.0}


def local_resources(exp: Experiment) -> dict[str, float]:
    """Custom resources an embedded local Ray must offer to host every actor of ``exp``."""
    out: dict[str, float] = {}
    for name in component_names(exp):
        for key, amount in _resource_for(name, exp).items():
            out[key] = out.get(key, 0.0) + amount
    return out


class RayEngineError(RuntimeError):
    """A component failed inside its actor."""


def _init(exp: Experiment, address: str | None) -> bool:
    """Connect to or start Ray; True if this call started (and so must shut down) Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    common = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": True}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(resources=local_resources(exp), **common)
    return True


def _options(name: str, exp: Experiment, available: dict[str, float]) -> dict[str, Any]:
    wanted = _resource_for(name, exp)
    resources = {k: v for k, v in wanted.items() if k in available}
    return {"num_cpus": 0, "resources": resources, "name": None}


def run_ray(
    exp: Experiment, address: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.5,
    live_s: float = 0.0,
) -> dict[str, Any]:
    """Run ``exp`` with one actor per component; returns raw component results.

    ``progress`` gets the collector's snapshot (plus ``now_s``) every ``poll_s`` wall seconds; with
    ``live_s`` > 0 every component reports its state to the collector at most that often (wall s),
    so the snapshot carries the live picture, and the collector is polled every ``live_s``.
    """
    poll_s = live_s if live_s > 0 else poll_s
    started = _init(exp, address)
    handles: dict[str, Any] = {}
    try:
        available = ray.cluster_resources()
        host_cls = ray.remote(ComponentHost)
        for name in component_names(exp):
            handles[name] = host_cls.options(**_options(name, exp, available)).remote(exp, name)
        nodes = dict(zip(handles, ray.get([h.connect.remote(handles) for h in handles.values()]),
                         strict=True))
        dilation = exp.experiment.dilation
        t0 = time.time() + exp.experiment.start_margin_s
        ray.get([h.start.remote(t0, dilation, live_s) for h in handles.values()])
        last = ray.get(handles["loadgen"].last_arrival_s.remote())
        deadline = t0 + (last + exp.experiment.drain_timeout_s) * dilation
        _wait(handles, deadline, poll_s, progress)
        parts = ray.get([h.results.remote() for h in handles.values()])
    finally:
        for h in handles.values():
            ray.kill(h)
        if started:
            ray.shutdown()
    errors = [e for p in parts for e in p.get("errors", [])]
    if errors:
        raise RayEngineError("; ".join(errors[:3]))
    for p in parts:
        p["node_id"] = nodes.get(p["name"])
    return {"engine": "ray", "end_s": (time.time() - t0) / dilation, "components": parts}


def _wait(handles: dict[str, Any], deadline: float, poll_s: float,
          progress: Callable[[dict[str, Any]], None] | None) -> None:
    collector = handles["collector"]
    while time.time() < deadline:
        if ray.get(collector.wait_done.remote(min(poll_s, deadline - time.time()))):
            return
        status = ray.get(collector.status.remote())
        if status["errors"]:
            raise RayEngineError("; ".join(status["errors"]))
        if progress is not None:
            progress({"now_s": status["now_s"], **status["snapshot"]})

"""The ray engine behind ``disagg serve``: the experiment's cluster with a gateway actor in the
load generator's place, running until the server stops.

:class:`ServedCluster` starts the actors as ``run_ray`` does (same placement, clock offsets and
start margin), hands the HTTP side awaitable calls into the gateway (submit a request, long-poll
its token plan, fetch finished requests for the metrics) and the collector (the live picture),
and on :meth:`ServedCluster.stop` closes the gateway, lets the requests in flight finish within a
drain time, and returns the raw results in ``run_ray``'s shape, for the usual results folder.
Unit loss is not watched while serving (no supervisor): a lost unit shows as failed requests.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from disagg.actors.components.collector import Drained
from disagg.actors.components.gateway import Gateway, Outcome, PlanUpdate
from disagg.actors.engines.build import component_names
from disagg.actors.engines.clock_sync import measure_offsets
from disagg.actors.engines.host import ComponentHost
from disagg.actors.engines.placement import Placement
from disagg.actors.engines.ray_engine import RayEngineError, gather_results, init_ray, node_ips
from disagg.cluster.config import Experiment
from disagg.cluster.records import with_nodes


class GatewayHost(ComponentHost):
    """The gateway's Ray actor: the component host plus the calls the HTTP side makes."""

    def __init__(self, exp: Experiment, name: str) -> None:
        super().__init__(exp, name, serving=True)
        self.gateway: Gateway = self.component  # type: ignore[assignment]

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float) -> int:
        """See :meth:`Gateway.submit`."""
        return self.gateway.submit(prompt_tokens, output_tokens, arrival_s)

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """See :meth:`Gateway.wait` (an async actor runs many of these at once)."""
        return await self.gateway.wait(request_id, version, from_index, timeout_s)

    async def outcomes(self, cursor: int) -> list[Outcome]:
        """See :meth:`Gateway.outcomes`."""
        return self.gateway.outcomes(cursor)

    async def close(self) -> int:
        """See :meth:`Gateway.close`."""
        return self.gateway.close()


class ServedCluster:
    """The experiment's cluster on Ray, fed by HTTP requests instead of a planned workload."""

    def __init__(self, exp: Experiment, address: str | None = None, live_s: float = 0.5) -> None:
        self.exp = exp
        self.address = address
        self.live_s = live_s  # wall s between the units' state reports (gauges in /metrics)
        self.handles: dict[str, Any] = {}
        self.t0 = 0.0
        self.dilation = exp.experiment.dilation
        self._started_ray = False
        self._placement: Placement | None = None
        self._nodes: dict[str, str] = {}
        self._offsets: dict[str, Any] = {}

    def start(self) -> None:
        """Start Ray (or join ``address``), place and start every actor; returns at ``t0``, once
        emu time runs."""
        self._started_ray = init_ray(self.exp, self.address)
        self._placement = Placement(self.exp, ray.cluster_resources())
        host_cls, gateway_cls = ray.remote(ComponentHost), ray.remote(GatewayHost)
        for name in component_names(self.exp):
            cls = gateway_cls if name == "loadgen" else host_cls
            args = (self.exp, name) if name == "loadgen" else (self.exp, name, True)
            self.handles[name] = cls.options(**self._placement.options(name)).remote(*args)
        refs = [h.connect.remote(self.handles) for h in self.handles.values()]
        self._nodes = dict(zip(self.handles, ray.get(refs), strict=True))
        self._offsets = measure_offsets(self._nodes, self.handles)
        self.t0 = time.time() + self.exp.experiment.start_margin_s
        ray.get([h.start.remote(self.t0, self.dilation, self._offsets[self._nodes[n]].offset_s,
                                self.live_s) for n, h in self.handles.items()])
        # take requests only once emu time runs (a request before t0 would wait for it)
        time.sleep(max(0.0, self.t0 - time.time()))

    def emu_now(self) -> float:
        """The cluster's emu time now (driver clock)."""
        return (time.time() - self.t0) / self.dilation

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float) -> int:
        """One request into the router at emu time ``arrival_s``; its request id."""
        return int(await self.handles["loadgen"].submit.remote(prompt_tokens, output_tokens,
                                                                arrival_s))

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """The request's token plan once it changed past ``version`` (or after ``timeout_s``)."""
        return await self.handles["loadgen"].wait.remote(request_id, version, from_index,
                                                         timeout_s)

    async def outcomes(self, cursor: int) -> list[Outcome]:
        """Requests that ended after the first ``cursor`` ends."""
        return await self.handles["loadgen"].outcomes.remote(cursor)

    async def status(self) -> dict[str, Any]:
        """The collector's errors, snapshot (with the live picture) and emu time."""
        return await self.handles["collector"].status.remote()

    def stop(self, drain_wall_s: float) -> dict[str, Any]:
        """Stop taking requests, let those in flight end within ``drain_wall_s`` wall seconds,
        gather every component's results, remove the actors (and Ray, if this started it)."""
        lost: dict[str, str] = {}
        try:
            if set(self.handles) != set(component_names(self.exp)):
                raise RayEngineError("the served cluster did not start completely")
            ray.get(self.handles["loadgen"].close.remote())
            ray.get(self.handles["collector"].wait_done.remote(drain_wall_s))
            drained: Drained = ray.get(self.handles["collector"].drain.remote(True))
            with_nodes(drained.transfers, self._nodes)
            drained.series = [s for part in ray.get(
                [h.drain_series.remote() for h in self.handles.values()]) for s in part]
            parts = gather_results(self.handles, lost)
        finally:
            for h in self.handles.values():
                ray.kill(h)
            if self._placement is not None:
                self._placement.release()
            ips = node_ips() if ray.is_initialized() else {}
            if self._started_ray:
                ray.shutdown()
        errors = [e for p in parts for e in p.get("errors", [])]
        if errors:
            raise RayEngineError("; ".join(errors[:3]))
        return {
            "engine": "ray", "end_s": self.emu_now(), "components": parts,
            "requests": drained.rows, "transfers": drained.transfers, "series": drained.series,
            "lost_units": sorted(lost), "placement_mode": self._placement.mode,  # type: ignore[union-attr]
            "placement": {n: {"node_id": node, "node_ip": ips.get(node, "")}
                          for n, node in self._nodes.items()},
            "clock": {node: {"offset_ms": o.offset_s * 1e3, "uncertainty_ms": o.uncertainty_s * 1e3}
                      for node, o in self._offsets.items()},
        }

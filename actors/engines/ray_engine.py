"""The ray engine: Ray async actors on wall-clock time with dilation — one per component, or
several units of one kind per actor (``[placement] units_per_actor``) and the control plane in one
(``[placement] one_control_actor``); messages travel through each actor's transport
(``transport.py``: one call per destination actor per loop tick, counted in ``messages``).

Every actor declares ``num_cpus=0`` and a custom resource named after the hardware it emulates
(``trainium2``, ``cs3``, ...; control-plane components use ``disagg_control``), so many actors fit
on a small machine and, on a cluster, units land on nodes that advertise their hardware.
``ray.init(address="local")`` starts an embedded local Ray (never joining a cluster that
something else started on this machine); ``RAY_ADDRESS`` or ``address`` joins
an existing cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ray

from disagg.actors.components.collector import Drained, EndedIds
from disagg.actors.components.load_generator import LoadGenerator
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.address import HINT, use_token_auth_for_embedded_ray
from disagg.actors.engines.build import CONTROL, build_component, component_names
from disagg.actors.engines.clock_sync import measure_offsets
from disagg.actors.engines.host import ComponentHost, RayPeer, RayStore, WallClock
from disagg.actors.engines.placement import (
    CONTROL_RESOURCE,
    Placement,
    actor_groups,
    local_resources,
    stage_package,
)
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.supervisor import (
    PING_TIMEOUT_S,
    ComponentLost,
    RayEngineError,
    Supervisor,
)
from disagg.actors.engines.transport import message_counts
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.messages import Request, RequestsEnded
from disagg.cluster.records import EndRecord, fold, with_nodes
from disagg.cluster.workload.kinds import ClosedLoopWorkload

__all__ = ["CONTROL_RESOURCE", "ComponentHost", "ComponentLost", "RayEngineError", "RayPeer",
           "RayStore", "WallClock", "local_resources", "run_ray"]

GATHER_TIMEOUT_S = 60.0  # wall seconds the surviving actors get to hand over their results


def init_ray(exp: Experiment, address: str | None) -> bool:
    """Connect to or start Ray; True if this call started (and so must shut down) Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": True}
    if address:
        if exp.placement.ship_code:
            common["runtime_env"] = {"py_modules": [str(stage_package())]}
        try:
            ray.init(address=address, **common)
        except (ConnectionError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"Ray address {address!r}: cannot connect ({first}); hint: "
                              f"{HINT}") from None
    else:
        use_token_auth_for_embedded_ray()
        # "local": always a new embedded Ray, never a cluster another program started here
        ray.init(address="local", resources=local_resources(exp), **common)
    return True


def replanned_arrivals(exp: Experiment, now_s: float) -> tuple[Request, ...]:
    """A lost open-loop load generator's requests, planned again from the seed (the plan is a
    pure function of it): the requests due by emu time ``now_s`` count as submitted."""
    gen = build_component(exp, "loadgen", WallClock(), LocalStore())
    assert isinstance(gen, LoadGenerator)
    due = int(np.searchsorted([r.arrival_s for r in gen.requests], now_s, side="right"))
    return tuple(gen.requests[:due])


def node_ips() -> dict[str, str]:
    return {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}


def _start_actors(exp: Experiment, placement: Placement, live_s: float
                  ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], float, Any]:
    """Create, connect and start the actors (one per control component, units in groups of
    ``[placement] units_per_actor``); returns the handle and node per component (components of
    one actor share them), clock offsets per node, t0 and the function that starts a fresh
    one-unit actor (for restarts)."""
    host_cls: Any = ray.remote(ComponentHost)
    groups = actor_groups(exp)
    actor_of = {n: key for key, members in groups.items() for n in members}
    actors = {key: host_cls.options(**placement.options(key, len(members))).remote(
        exp, members[0] if len(members) == 1 else members) for key, members in groups.items()}
    handles = {n: actors[actor_of[n]] for n in component_names(exp)}
    node_of = dict(zip(actors, ray.get([a.connect.remote(handles, actor_of)
                                        for a in actors.values()]), strict=True))
    nodes = {n: node_of[actor_of[n]] for n in handles}
    offsets = measure_offsets(nodes, handles)
    dilation = exp.experiment.dilation
    t0 = time.time() + exp.experiment.start_margin_s
    ray.get([a.start.remote(t0, dilation, offsets[node_of[k]].offset_s, live_s)
             for k, a in actors.items()])

    def start_unit(name: str) -> Any:
        handle: Any = host_cls.options(**placement.options(name)).remote(exp, name)
        node: str = ray.get(handle.connect.remote(handles, actor_of))
        offset = offsets[node].offset_s if node in offsets else 0.0
        ray.get(handle.start.remote(t0, dilation, offset, live_s))
        return handle

    return handles, nodes, offsets, t0, start_unit


def run_ray(
    exp: Experiment, address: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.5,
    live_s: float = 0.0, stop: StopFlag | None = None,
    sink: Callable[[Drained], None] | None = None,
) -> dict[str, Any]:
    """Run ``exp`` on Ray actors; returns raw component results (and ``messages``: what crossed
    actors, ``transport.message_counts``).

    ``progress`` gets the collector's snapshot (plus ``now_s``) every ``poll_s`` wall seconds; with
    ``live_s`` > 0 every component reports its state to the collector at most that often (wall s),
    so the snapshot carries the live picture, and the collector is polled every ``live_s``.
    ``stop``, once requested, ends the run: arrivals stop, unfinished requests are ``cancelled``.
    A lost control-plane actor ends the run too: what the others hold is returned, unfinished
    requests ``failed`` with reason ``emulator_component_lost`` and ``component_lost`` naming it.
    Each poll drains the collector's finished rows into ``sink`` (kept in memory under
    ``requests`` and ``transfers`` without one).
    """
    poll_s = live_s if live_s > 0 else poll_s
    started = init_ray(exp, address)
    handles: dict[str, Any] = {}
    placement: Placement | None = None
    lost: dict[str, str] = {}
    raw: dict[str, Any] = {"engine": "ray"}
    kept = Drained()
    try:
        placement = Placement(exp, ray.cluster_resources())
        handles, nodes, offsets, t0, start_unit = _start_actors(exp, placement, live_s)
        sup = Supervisor(exp, handles, t0, lost, start_unit)
        drain = Drainer(handles, nodes, sink or kept.extend, t0, exp.experiment.dilation, lost)
        _supervise(exp, sup, poll_s, progress, stop, raw, drain)
        raw["components"] = gather_results(handles, lost)
        raw["messages"] = message_counts(raw["components"])
        raw["faults"] = sup.player.log
    finally:
        for h in set(handles.values()):
            ray.kill(h)
        if placement is not None:
            placement.release()
        ips = node_ips() if ray.is_initialized() else {}
        if started:
            ray.shutdown()
    errors = [e for p in raw["components"] for e in p.get("errors", [])]
    if errors and "component_lost" not in raw:
        raise RayEngineError("; ".join(errors[:3]))
    raw.update(requests=kept.rows, transfers=kept.transfers, series=kept.series,
               end_s=(time.time() - t0) / exp.experiment.dilation,
               lost_units=sorted(n for n in lost if n not in CONTROL),
               placement_mode=placement.mode, **_where(nodes, ips, offsets))
    return raw


def _where(nodes: dict[str, str], ips: dict[str, str], offsets: dict[str, Any]
           ) -> dict[str, Any]:
    """Which node each component ran on, and each node's measured clock offset."""
    return {
        "placement": {n: {"node_id": nodes[n], "node_ip": ips.get(nodes[n], "")} for n in nodes},
        "clock": {node: {"offset_ms": o.offset_s * 1e3, "uncertainty_ms": o.uncertainty_s * 1e3}
                  for node, o in offsets.items()},
    }


def _supervise(exp: Experiment, sup: Supervisor, poll_s: float,
               progress: Callable[[dict[str, Any]], None] | None, stop: StopFlag | None,
               raw: dict[str, Any], drain: Drainer) -> None:
    """Wait for the run's end, draining rows as it goes, then drain the rest; note in ``raw``
    why it ended early (stop, lost control actor)."""
    unsent: tuple[Request, ...] = ()
    try:
        last = ray.get(sup.handles["loadgen"].last_arrival_s.remote())
        deadline = sup.t0 + (last + exp.experiment.drain_timeout_s) * exp.experiment.dilation
        how = sup.wait(deadline, poll_s, progress, stop, drain)
    except ray.exceptions.RayActorError as e:
        how = ""
        sup.lost["loadgen"] = type(e).__name__
        raw["component_lost"] = "loadgen"
    except ComponentLost as e:
        how = ""
        sup.lost[e.name] = str(e)
        raw["component_lost"] = e.name
    if how == "stopped" and stop is not None:
        raw["unfinished"] = {"status": "cancelled", "reason": stop.reason}
    if how != "done" and how != "deadline" and "loadgen" not in sup.lost:
        try:  # stop arrivals; the requests sent but not yet reported to the collector
            unsent = ray.get(sup.handles["loadgen"].stop_arrivals.remote(), timeout=PING_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            sup.lost["loadgen"] = "lost while stopping"
            raw["component_lost"] = raw.get("component_lost", "loadgen")
    if "component_lost" in raw:
        raw["unfinished"] = {"status": "failed", "reason": "emulator_component_lost"}
    open_loop = not isinstance(exp.workload, ClosedLoopWorkload)
    if ("loadgen" in sup.lost or "collector" in sup.lost) and open_loop:
        unsent = replanned_arrivals(exp, sup.emu_now())
    unfinished = raw.get("unfinished")
    status = None if unfinished is None else (unfinished["status"], unfinished["reason"])
    if "collector" in sup.lost:  # its rows went with it: the requests it held get theirs here
        drain.without_collector(unsent, status)
        return
    flush_transports(sup.handles, sup.lost)
    drain(True, status, unsent)  # in the same call: Ray orders no two calls of an async actor


class Drainer:
    """Drains the collector's finished rows (transfers with their Ray nodes) and the
    components' final timeseries bins into ``sink``; the router forgets the requests that ended.
    A unit lost meanwhile contributes no bins this time (the supervisor notices it)."""

    def __init__(self, handles: dict[str, Any], nodes: dict[str, str],
                 sink: Callable[[Drained], None], t0: float, dilation: float,
                 lost: dict[str, str]) -> None:
        self.handles, self.nodes, self.sink = handles, nodes, sink
        self.t0, self.dilation, self.lost = t0, dilation, lost
        self.written = EndedIds()  # request ids whose rows went to the sink

    def __call__(self, final: bool = False, unfinished: tuple[str, str] | None = None,
                 arrivals: tuple[Request, ...] = ()) -> None:
        try:
            drained: Drained = ray.get(
                self.handles["collector"].drain.remote(final, unfinished, arrivals))
        except ray.exceptions.RayActorError as e:
            raise ComponentLost("collector", type(e).__name__) from None
        if drained.ended_ids and "router" not in self.lost:
            self.handles["router"].deliver.remote(
                RequestsEnded(tuple(drained.ended_ids), (time.time() - self.t0) / self.dilation),
                "router")
        with_nodes(drained.transfers, self.nodes)
        self._out(drained)

    def without_collector(self, requests: tuple[Request, ...],
                          unfinished: tuple[str, str] | None) -> None:
        """The collector was lost: a row for each of ``requests`` not yet written, ended with
        ``unfinished`` (what the collector held of them went with it)."""
        status, reason = unfinished or ("failed", "emulator_component_lost")
        rows = [fold([r], EndRecord(r.request_id, status, reason, None, r.attempt + 1))
                for r in requests if r.request_id not in self.written]
        self._out(Drained(rows=rows))

    def _out(self, drained: Drained) -> None:
        refs = [h.drain_series.remote() for h in live_actors(self.handles, self.lost).values()]
        try:
            drained.series = [s for part in ray.get(refs, timeout=GATHER_TIMEOUT_S) for s in part]
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass  # a unit was lost: this drain's bins are dropped (a gap in the timeseries)
        for row in drained.rows:
            self.written.add(row["request_id"])
        self.sink(drained)


def live_actors(handles: dict[str, Any], lost: dict[str, str]) -> dict[str, Any]:
    """One handle per actor (by the first live component it hosts) among those not lost."""
    out: dict[str, Any] = {}
    seen: set[Any] = set()
    for name, handle in handles.items():
        if name not in lost and handle not in seen:
            seen.add(handle)
            out[name] = handle
    return out


def gather_results(handles: dict[str, Any], lost: dict[str, str]) -> list[dict[str, Any]]:
    """Every surviving component's results, fetched together (a unit lost at the very end is
    recorded as lost)."""
    names = list(live_actors(handles, lost))
    refs = [handles[n].results.remote() for n in names]
    ray.wait(refs, num_returns=len(refs), timeout=GATHER_TIMEOUT_S)
    parts = []
    for name, ref in zip(names, refs, strict=True):
        try:
            parts.extend(ray.get(ref, timeout=0))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            lost[name] = "lost before results were gathered"
    return parts


def flush_transports(handles: dict[str, Any], lost: dict[str, str]) -> None:
    """Every live actor sends what its transport holds and waits until the collector handled
    it, so that the final drain (called after this) carries every record."""
    refs = [h.flush.remote() for h in live_actors(handles, lost).values()]
    ray.wait(refs, num_returns=len(refs), timeout=GATHER_TIMEOUT_S)

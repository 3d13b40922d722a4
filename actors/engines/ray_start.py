"""Starting the ray engine: Ray itself (an embedded local Ray, or joining a cluster) and the
actors that host the components, connected, clock-synchronised and started at one t0; what a lost
load generator had planned; the nodes' addresses. Used by :mod:`ray_engine`.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import ray

from disagg.actors.components.load_generator import LoadGenerator
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.address import HINT, use_token_auth_for_embedded_ray
from disagg.actors.engines.build import build_component
from disagg.actors.engines.clock_sync import measure_offsets
from disagg.actors.engines.host import ComponentHost, WallClock
from disagg.actors.engines.placement import Placement, actor_groups, local_resources, staged_package
from disagg.actors.engines.signals import driver_signals_kept
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.facts import component_names
from disagg.cluster.messages import Request

__all__ = ["init_ray", "node_ips", "replanned_arrivals", "start_actors"]


def init_ray(exp: Experiment, address: str | None) -> bool:
    """Connect to or start Ray; True if this call started (and so must shut down) Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                              "log_to_driver": True}
    if address:
        # the staged copy is removed once ray.init has uploaded it (py_modules), connected or not
        with staged_package() if exp.placement.ship_code else nullcontext() as staged:
            if staged is not None:
                common["runtime_env"] = {"py_modules": [str(staged)]}
            try:
                _init(address=address, **common)
            except (ConnectionError, ValueError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"Ray address {address!r}: cannot connect ({first}); hint: "
                                  f"{HINT}") from None
    else:
        use_token_auth_for_embedded_ray()
        # "local": always a new embedded Ray, never a cluster another program started here
        _init(address="local", resources=local_resources(exp), **common)
    return True


def _init(**kwargs: Any) -> None:
    """``ray.init`` keeping the driver's signal handlers; an interrupt while Ray starts shuts
    down what it had started (no Ray process outlives the command)."""
    try:
        with driver_signals_kept():
            ray.init(**kwargs)
    except BaseException:
        if ray.is_initialized():
            with driver_signals_kept():
                ray.shutdown()
        raise


def replanned_arrivals(exp: Experiment, now_s: float) -> tuple[Request, ...]:
    """A lost open-loop load generator's requests, planned again from the seed (the plan is a
    pure function of it): the requests due by emu time ``now_s`` count as submitted."""
    gen = build_component(exp, "loadgen", WallClock(), LocalStore())
    assert isinstance(gen, LoadGenerator)
    due = int(np.searchsorted([r.arrival_s for r in gen.requests], now_s, side="right"))
    return tuple(gen.requests[:due])


def node_ips() -> dict[str, str]:
    return {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}


def start_actors(exp: Experiment, placement: Placement, live_s: float, serving: bool = False
                  ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], float, Any]:
    """Create, connect and start the actors (one per control component or all four in one,
    units in groups of ``[placement] units_per_actor``; ``serving``: ``disagg serve``'s
    components); returns the handle and node per component (components of one actor share them),
    clock offsets per node, t0 and the function that starts a fresh one-unit actor (restarts)."""
    host_cls: Any = ray.remote(ComponentHost)
    groups = actor_groups(exp, serving)
    actor_of = {n: key for key, members in groups.items() for n in members}
    actors = {key: host_cls.options(**placement.options(key, len(members))).remote(
        exp, members[0] if len(members) == 1 else members, serving)
        for key, members in groups.items()}
    handles = {n: actors[actor_of[n]] for n in component_names(exp, serving)}
    node_of = dict(zip(actors, ray.get([a.connect.remote(handles, actor_of)
                                        for a in actors.values()]), strict=True))
    nodes = {n: node_of[actor_of[n]] for n in handles}
    offsets = measure_offsets(nodes, handles)
    dilation = exp.experiment.dilation
    t0 = time.time() + exp.experiment.start_margin_s
    ray.get([a.start.remote(t0, dilation, offsets[node_of[k]].offset_s, live_s)
             for k, a in actors.items()])

    def start_unit(name: str) -> Any:
        handle: Any = host_cls.options(**placement.options(name)).remote(exp, name, serving)
        node: str = ray.get(handle.connect.remote(handles, actor_of))
        offset = offsets[node].offset_s if node in offsets else 0.0
        ray.get(handle.start.remote(t0, dilation, offset, live_s))
        return handle

    return handles, nodes, offsets, t0, start_unit

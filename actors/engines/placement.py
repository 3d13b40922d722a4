"""Where each actor runs on a Ray cluster.

* **resources** mode — every node advertises the hardware it emulates as a custom resource
  (``ray start --resources '{"trainium2": 64}'``); a unit actor asks for ``{hardware: chips}``, so
  prefill units land on nodes offering their chips and decode units likewise. An embedded local Ray
  is started with exactly the resources the experiment needs, so it is always in this mode.
* **spread** mode — the cluster advertises none of the hardware: unit actors go into one
  placement group of ``{"memory": unit_memory}`` bundles with the SPREAD strategy, so units spread
  over nodes and a node holds as many as its memory allows.

Control-plane actors (router, fabric, collector, load generator) go on the head node by default.
Every actor declares ``num_cpus=0``: units are limited by memory, not CPUs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from disagg.cluster.config import Experiment
from disagg.cluster.facts import component_names, control_names, unit_ids

CONTROL_RESOURCE = "disagg_control"
HEAD_RESOURCE = "node:__internal_head__"


def unit_resource(name: str, exp: Experiment) -> dict[str, float]:
    """The hardware resource a unit actor asks for (empty for control components)."""
    unit = unit_ids(exp).get(name)
    if unit is None:
        return {}
    pool = exp.pools[unit.kind]
    return {pool.hardware.name: float(pool.chips_per_unit)}


def actor_groups(exp: Experiment, serving: bool = False) -> dict[str, tuple[str, ...]]:
    """The components each actor hosts, keyed by its first: each control component alone (or all
    four together, ``[placement] one_control_actor``), units of one kind in groups of
    ``[placement] units_per_actor`` (in index order). ``serving``: ``disagg serve``'s
    components (the gateway in the load generator's place)."""
    size = exp.placement.units_per_actor
    ids = unit_ids(exp)
    groups: dict[str, tuple[str, ...]] = {}
    control = control_names(serving)
    if exp.placement.one_control_actor:
        groups[control[0]] = control
    open_group: dict[str, list[str]] = {}  # unit kind -> the group being filled
    for name in component_names(exp, serving):
        unit = ids.get(name)
        if unit is None:
            if not exp.placement.one_control_actor:
                groups[name] = (name,)
            continue
        members = open_group.get(unit.kind)
        if members is None or len(members) == size:
            members = open_group[unit.kind] = []
            groups[name] = ()
        members.append(name)
        groups[members[0]] = tuple(members)
    return groups


def local_resources(exp: Experiment) -> dict[str, float]:
    """Custom resources an embedded local Ray must offer to host every actor of ``exp``."""
    out: dict[str, float] = {CONTROL_RESOURCE: 8.0}
    for name in component_names(exp):
        for key, amount in unit_resource(name, exp).items():
            out[key] = out.get(key, 0.0) + amount
    return out


def placement_mode(exp: Experiment, available: dict[str, float]) -> str:
    """"resources" when the cluster offers both pools' hardware, else "spread"."""
    needed = {pool.hardware.name for pool in exp.pools.values()}
    return "resources" if needed <= set(available) else "spread"


class Placement:
    """Ray actor options for every component of one run."""

    def __init__(self, exp: Experiment, available: dict[str, float]) -> None:
        self.exp = exp
        self.available = available
        self.mode = placement_mode(exp, available)
        # the unit actors (by their first unit) and how many units each hosts; each unit's actor
        groups = {k: g for k, g in actor_groups(exp).items() if unit_resource(k, exp)}
        self.units = {k: len(g) for k, g in groups.items()}
        self.bundle_of = {n: i for i, g in enumerate(groups.values()) for n in g}
        self.group = None
        if self.mode == "spread":
            memory = exp.placement.unit_memory_mb * 2**20
            self.group = placement_group([{"memory": memory * n} for n in self.units.values()],
                                         strategy="SPREAD")
            ray.get(self.group.ready(), timeout=60)

    def options(self, name: str, units: int = 1) -> dict[str, Any]:
        """``.options(...)`` for the actor hosting component ``name`` (and, with ``units`` > 1,
        the next units of its kind: their hardware together)."""
        base: dict[str, Any] = {"num_cpus": 0}
        if name not in self.bundle_of:  # a control component
            if CONTROL_RESOURCE in self.available:
                base["resources"] = {CONTROL_RESOURCE: 1.0}
            elif self.exp.placement.control == "head" and HEAD_RESOURCE in self.available:
                base["resources"] = {HEAD_RESOURCE: 0.001}
            return base
        if self.mode == "resources":
            base["resources"] = {k: v * units for k, v in unit_resource(name, self.exp).items()}
            return base
        assert self.group is not None
        base["memory"] = self.exp.placement.unit_memory_mb * 2**20 * units
        base["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
            self.group, placement_group_bundle_index=self.bundle_of[name])
        return base

    def release(self) -> None:
        if self.group is not None:
            ray.util.remove_placement_group(self.group)


@contextmanager
def staged_package() -> Iterator[Path]:
    """A copy of the installed ``disagg`` package in a temporary folder, for ``py_modules``, so
    nodes without it installed can import it (its dependencies must be on the nodes already);
    removed on leaving (``ray.init`` uploads it, and nothing reads it after), copy failed or not."""
    import disagg.actors
    import disagg.cluster
    import disagg.experiments
    import disagg.fabric
    import disagg.policies

    with tempfile.TemporaryDirectory(prefix="disagg-ship-") as tmp:
        root = Path(tmp) / "disagg"
        root.mkdir()
        for mod in (disagg.cluster, disagg.policies, disagg.fabric, disagg.actors,
                    disagg.experiments):
            src = Path(mod.__path__[0])
            shutil.copytree(src, root / mod.__name__.split(".")[-1],
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "traces"))
        yield root

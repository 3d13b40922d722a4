"""Build an experiment's components by name: shared by the virtual and the ray engine."""

from __future__ import annotations

import os
import zlib

import numpy as np

from disagg.actors.components.closed_loop import ClosedLoopGenerator
from disagg.actors.components.collector import Collector
from disagg.actors.components.colocated import ColocatedUnit
from disagg.actors.components.decode import DecodeUnit
from disagg.actors.components.gateway import Gateway
from disagg.actors.components.kept_kv import KeptKv
from disagg.actors.components.load_generator import (
    LoadGenerator,
    make_requests,
    slo_targets,
)
from disagg.actors.components.prefill import PrefillUnit
from disagg.actors.components.router import Router
from disagg.actors.components.store import ObjectStore
from disagg.actors.components.token_feed import TokenFeed
from disagg.actors.components.unit_log import UnitLog
from disagg.actors.engines.faults import with_kv_faults
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.faults import FaultSchedule, fault_schedule
from disagg.cluster.hardware.perf import fit_check, kv_bytes
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS
from disagg.cluster.prefix_cache import PrefixCache
from disagg.cluster.records import UnitId
from disagg.cluster.sizing import estimate_run_size
from disagg.cluster.workload.kinds import ClosedLoopWorkload
from disagg.cluster.workload.plan import ClosedLoop, check_workload
from disagg.fabric.component import Fabric
from disagg.fabric.topology import build_topology, unit_names
from disagg.policies import DECODE_ADMISSION, PREFILL_BATCHING, ROUTERS
from disagg.policies.base import PolicyContext, UnitView

CONTROL = ("collector", "router", "fabric", "loadgen")


def unit_ids(exp: Experiment) -> dict[str, UnitId]:
    """Every unit of the experiment by component name: its kind and index, as data."""
    return {u.name: u for kind, pool in exp.pools.items()
            for u in (UnitId(kind, i) for i in range(pool.units))}


def component_names(exp: Experiment) -> list[str]:
    """Every component of the experiment, control plane first."""
    names = [*CONTROL, *(u for kind, pool in exp.pools.items() for u in unit_names(kind, pool.units))]
    assert names[len(CONTROL):] == list(unit_ids(exp)), "unit names and ids disagree"
    return names


def component_rng(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible random stream per (root seed, component name)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def decode_kv_capacity(exp: Experiment) -> float:
    """KV bytes one decode (or colocated) unit can hold once its model copy is resident."""
    pool = exp.last_pool
    return fit_check(exp.model, pool.hardware, pool.chips_per_unit).kv_capacity_bytes


def prefill_cache_blocks(exp: Experiment) -> int:
    """Blocks one prefill unit's prefix cache holds: the configured number, or the memory its
    weights leave free divided by the KV bytes of one block."""
    cfg = exp.prefix_cache
    if cfg.capacity_blocks is not None:
        return cfg.capacity_blocks
    pool = exp.first_pool  # the prefill pool (or the colocated one)
    free = fit_check(exp.model, pool.hardware, pool.chips_per_unit).kv_capacity_bytes
    return max(0, int(free // float(kv_bytes(PREFIX_BLOCK_TOKENS, exp.model))))


def _prefill_cache(exp: Experiment) -> PrefixCache | None:
    cfg = exp.prefix_cache
    return PrefixCache(prefill_cache_blocks(exp), cfg.eviction) if cfg.enabled else None


def _kept_kv(exp: Experiment) -> KeptKv | None:
    cfg = exp.prefix_cache
    if not cfg.decode_keep:
        return None
    block_bytes = float(kv_bytes(PREFIX_BLOCK_TOKENS, exp.model))
    return KeptKv(PrefixCache(int(decode_kv_capacity(exp) // block_bytes), cfg.eviction),
                  block_bytes)


def policy_context(exp: Experiment, name: str) -> PolicyContext:
    """What policies read; a colocated pool stands for both the prefill and the decode side."""
    first, last = exp.first_pool, exp.last_pool
    return PolicyContext(
        exp.model, first.hardware, first.chips_per_unit, last.hardware, last.chips_per_unit,
        component_rng(exp.experiment.seed, name + "/policy"),
    )


def initial_views(exp: Experiment) -> list[UnitView]:
    """What the router knows before any report: every unit up and empty."""
    cap = decode_kv_capacity(exp)
    return [UnitView(u, kind, kv_capacity_bytes=float("inf") if kind == "prefill" else cap)  # type: ignore[arg-type]
            for kind, pool in exp.pools.items() for u in unit_names(kind, pool.units)]


def host_units(exp: Experiment) -> dict[str, list[str]]:
    """Each host of the experiment's topology and the units on it."""
    out: dict[str, list[str]] = {}
    for unit, host in build_topology(exp).unit_host.items():
        out.setdefault(host, []).append(unit)
    return out


def experiment_faults(exp: Experiment) -> FaultSchedule:
    """The experiment's one fault schedule (host losses expanded to the units on each host)."""
    return fault_schedule(exp.faults, host_units(exp))


def check_faults(exp: Experiment) -> None:
    """Every ``[[faults]]`` entry names a unit, host or fabric link this experiment has."""
    names = set(component_names(exp))
    links = {f"{h}/{side}" if h != "core" else "core" for h, side in build_topology(exp).capacity}
    hosts = host_units(exp)
    for i, entry in enumerate(exp.faults):
        host = getattr(entry, "host", None)
        if host is not None and host not in hosts:
            raise ConfigError(f"field 'faults.{i}.host': value {host!r} is not a host of this "
                              f"experiment; allowed: {', '.join(sorted(hosts))}")
        unit = getattr(entry, "unit", None)
        if unit is not None and unit not in names:
            known = ", ".join(f"{k}-0..{p.units - 1}" for k, p in exp.pools.items())
            raise ConfigError(f"field 'faults.{i}.unit': value {unit!r} is not a unit of this "
                              f"experiment ({known})")
        link = getattr(entry, "link", None)
        if link is not None and link not in links:
            raise ConfigError(f"field 'faults.{i}.link': value {link!r} is not a link of this "
                              f"experiment; allowed: {', '.join(sorted(links))}")


def machine_memory_bytes() -> float:
    """Physical memory of this machine, bytes (POSIX sysconf)."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_size(exp: Experiment, memory_bytes: float | None = None) -> None:
    """Refuse a run whose estimated peak memory exceeds ``experiment.max_memory_fraction`` of the
    machine's (``memory_bytes``, default this machine's), naming the estimate."""
    size = estimate_run_size(exp, len(build_topology(exp).capacity))
    limit = exp.experiment.max_memory_fraction * (memory_bytes or machine_memory_bytes())
    if size.bytes > limit:
        raise ConfigError(
            f"run size: estimated {size.describe()} exceeds {limit / 1e9:.1f} GB "
            f"({exp.experiment.max_memory_fraction:g} of this machine's memory); allowed: a "
            "shorter experiment.duration_s, a lower workload.rate_per_s or a larger "
            "output.sample_interval_s")


def check_experiment(exp: Experiment) -> None:
    """Checks that need the catalog, the performance models and the policy registries."""
    gb = 1e9
    for kind, pool in exp.pools.items():
        fit = fit_check(exp.model, pool.hardware, pool.chips_per_unit)
        if fit.kv_capacity_bytes <= 0:
            raise ConfigError(
                f"field '{kind}.chips_per_unit': value {pool.chips_per_unit} is too small: "
                f"{exp.model.name} weights ({fit.weight_bytes / gb:.1f} GB) exceed "
                f"{pool.chips_per_unit} x {pool.hardware.name} ({fit.capacity_bytes / gb:.1f} GB)"
            )
    check_faults(exp)
    check_size(exp)
    check_workload(exp.workload, slo_targets(exp), exp.experiment.duration_s)
    ctx = policy_context(exp, "check")
    for field, registry in (("router", ROUTERS), ("prefill_batching", PREFILL_BATCHING),
                            ("decode_admission", DECODE_ADMISSION)):
        spec = getattr(exp.policies, field)
        try:
            registry.create(spec.name, spec.params, ctx)  # type: ignore[attr-defined]
        except ConfigError as e:
            raise ConfigError(f"field 'policies.{field}': {e}") from None


def build_component(
    exp: Experiment, name: str, clock: Clock, store: ObjectStore, control_delay_s: float = 0.0,
    serving: bool = False,
) -> Component:
    """Construct the component called ``name`` with its own random stream and policies.

    ``serving`` (``disagg serve``): a :class:`Gateway` takes the load generator's place (and
    name), the collector forwards every end to it and the units feed it token times."""
    if serving:
        return _serving_component(exp, name, clock, store, control_delay_s)
    rng = component_rng(exp.experiment.seed, name)
    unit = unit_ids(exp).get(name)
    comp = _build_unit(exp, unit, clock, store, control_delay_s) if unit is not None else \
        _build_control(exp, name, clock, rng, control_delay_s)
    comp.rng = rng
    comp.unit = unit
    return comp


def _build_control(exp: Experiment, name: str, clock: Clock, rng: np.random.Generator,
                   control_delay_s: float) -> Component:
    comp: Component
    closed = isinstance(exp.workload, ClosedLoopWorkload)
    if name == "collector":
        comp = Collector(name, clock, forward_ended_to="loadgen" if closed else None)
    elif name == "loadgen" and isinstance(exp.workload, ClosedLoopWorkload):
        loop = ClosedLoop(exp.workload, slo_targets(exp), exp.experiment.duration_s, rng)
        comp = ClosedLoopGenerator(name, clock, loop)
    elif name == "loadgen":
        comp = LoadGenerator(name, clock, make_requests(exp, rng))
    elif name == "router":
        spec = exp.policies.router
        policy = ROUTERS.create(spec.name, spec.params, policy_context(exp, name))
        comp = Router(name, clock, policy, policy_context(exp, name), initial_views(exp),
                      control_delay_s, exp.prefix_cache.transfer == "missing",
                      exp.experiment.over_context)
    elif name == "fabric":
        comp = Fabric(name, clock, build_topology(exp), exp.fabric, control_delay_s,
                      exp.model.layers, exp.output.sample_interval_s, exp.output.event_log)
    else:
        raise KeyError(f"no component called {name!r}")
    return comp


def _build_unit(exp: Experiment, unit: UnitId, clock: Clock, store: ObjectStore,
                control_delay_s: float) -> Component:
    """A prefill, decode or colocated unit of ``exp``."""
    name, seed = unit.name, exp.experiment.seed
    comp: PrefillUnit | DecodeUnit | ColocatedUnit
    if unit.kind == "prefill" and exp.prefill is not None:
        spec = exp.policies.prefill_batching
        comp = PrefillUnit(
            name, clock, exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit,
            PREFILL_BATCHING.create(spec.name, spec.params, policy_context(exp, name)),
            with_kv_faults(store, experiment_faults(exp)), exp.output.payload_scale, seed,
            control_delay_s, exp.experiment.load_report_interval_s, exp.fabric.layer_wise,
            _prefill_cache(exp),
        )
    elif unit.kind == "decode" and exp.decode is not None:
        spec = exp.policies.decode_admission
        comp = DecodeUnit(
            name, clock, exp.model, exp.decode.hardware, exp.decode.chips_per_unit,
            DECODE_ADMISSION.create(spec.name, spec.params, policy_context(exp, name)),
            store, decode_kv_capacity(exp), control_delay_s, exp.experiment.load_report_interval_s,
            _kept_kv(exp),
        )
    elif unit.kind == "colocated" and exp.colocated is not None:
        pool = exp.colocated
        comp = ColocatedUnit(
            name, clock, exp.model, pool.hardware, pool.chips_per_unit, decode_kv_capacity(exp),
            pool.token_budget, pool.max_running, control_delay_s,
            exp.experiment.load_report_interval_s,
        )
    else:
        raise KeyError(f"no component called {name!r}")
    comp.log = UnitLog(exp.output.sample_interval_s, exp.output.event_log)
    return comp


def _serving_component(exp: Experiment, name: str, clock: Clock, store: ObjectStore,
                       control_delay_s: float) -> Component:
    """``build_component`` for ``disagg serve`` (see there)."""
    if name == "loadgen":
        comp: Component = Gateway(name, clock, slo_targets(exp))
        comp.rng = component_rng(exp.experiment.seed, name)
        return comp
    if name == "collector":
        comp = Collector(name, clock, forward_ended_to="loadgen")
        comp.rng = component_rng(exp.experiment.seed, name)
        return comp
    comp = build_component(exp, name, clock, store, control_delay_s)
    if isinstance(comp, PrefillUnit | DecodeUnit):
        comp.token_feed = TokenFeed("loadgen")
    return comp

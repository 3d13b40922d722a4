"""Facts about one experiment that follow from its config alone: its components and units by
name, each component's random stream, KV capacities, hosts and faults, and the checks that refuse
a run before anything starts. Pure (no engine, no Ray): the engines, the results writer, compare
and plan all read them from here."""

from __future__ import annotations

import os
import zlib

import numpy as np

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.faults import FaultSchedule, fault_schedule
from disagg.cluster.hardware.perf import fit_check, kv_bytes
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS
from disagg.cluster.paged_kv import PagedKv, paged_kv
from disagg.cluster.pool_config import DecodePoolConfig
from disagg.cluster.records import UnitId
from disagg.cluster.sizing import MAX_TIMESERIES_ROWS, estimate_run_size
from disagg.cluster.topology import build_topology, unit_names
from disagg.cluster.workload.kinds import AgenticWorkload, ClosedLoopWorkload
from disagg.cluster.workload.plan import SloTargets

CONTROL = ("collector", "router", "fabric", "loadgen")
"""The control-plane components of a run, in start order."""

SERVE_CONTROL = ("collector", "router", "fabric", "gateway")
"""The control plane under ``disagg serve``: the gateway takes the load generator's place."""


def control_names(serving: bool = False) -> tuple[str, ...]:
    """The control-plane component names of a run (``serving``: of ``disagg serve``)."""
    return SERVE_CONTROL if serving else CONTROL


def arrivals_name(serving: bool = False) -> str:
    """The component that submits requests: the load generator, or the gateway when serving."""
    return "gateway" if serving else "loadgen"


def unit_ids(exp: Experiment) -> dict[str, UnitId]:
    """Every unit of the experiment by component name: its kind and index, as data."""
    return {u.name: u for kind, pool in exp.pools.items()
            for u in (UnitId(kind, i) for i in range(pool.units))}


def component_names(exp: Experiment, serving: bool = False) -> list[str]:
    """Every component of the experiment, control plane first."""
    units = [u for kind, pool in exp.pools.items() for u in unit_names(kind, pool.units)]
    assert units == list(unit_ids(exp)), "unit names and ids disagree"
    return [*control_names(serving), *units]


def component_rng(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible random stream per (root seed, component name)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def closed_loop(exp: Experiment) -> bool:
    """True when the workload's next requests depend on earlier ones ending (chat users in a
    closed loop, agent tasks' chains of calls): nothing can be planned ahead."""
    return isinstance(exp.workload, ClosedLoopWorkload | AgenticWorkload)


def slo_targets(exp: Experiment) -> SloTargets:
    """The experiment's default SLO targets (s)."""
    return SloTargets(exp.slo.ttft_s, exp.slo.tpot_s)


def decode_kv_capacity(exp: Experiment) -> float:
    """KV bytes one decode (or colocated) unit can hold once its model copy (and a speculative
    draft model on the same chips) is resident."""
    pool = exp.last_pool
    free = fit_check(exp.model, pool.hardware, pool.chips_per_unit).kv_capacity_bytes
    spec = pool.speculative if isinstance(pool, DecodePoolConfig) else None
    return free - (spec.draft_weight_bytes_on_unit if spec is not None else 0.0)


def decode_paged_kv(exp: Experiment) -> PagedKv | None:
    """The KV blocks of one decode (or colocated) unit, or None: KV reserved up front."""
    pool = exp.last_pool
    if not isinstance(pool, DecodePoolConfig) or pool.kv_allocation == "reserve":
        return None
    return paged_kv(decode_kv_capacity(exp), exp.model, pool.kv_block_tokens, pool.kv_watermark,
                    pool.preemption, pool.swap_bytes_per_s_per_chip * pool.chips_per_unit)


def prefill_cache_blocks(exp: Experiment) -> int:
    """Blocks one prefill unit's prefix cache holds: the configured number, or the memory its
    weights leave free divided by the KV bytes of one block."""
    cfg = exp.prefix_cache
    if cfg.capacity_blocks is not None:
        return cfg.capacity_blocks
    pool = exp.first_pool  # the prefill pool (or the colocated one)
    free = fit_check(exp.model, pool.hardware, pool.chips_per_unit).kv_capacity_bytes
    return max(0, int(free // float(kv_bytes(PREFIX_BLOCK_TOKENS, exp.model))))


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


def _fault_start(entry: object) -> tuple[str, float] | None:
    """The time field of a timed fault entry and its value (None for KV faults)."""
    for key in ("at_s", "from_s"):
        value = getattr(entry, key, None)
        if value is not None:
            return key, float(value)
    return None


def check_fault_times(exp: Experiment) -> None:
    """Refuse a fault that starts after the run has surely ended (``duration_s`` plus
    ``drain_timeout_s``: it could never happen), and a unit lost while it is already down
    (the same unit, or a host holding it, lost twice in overlapping windows)."""
    latest = exp.experiment.duration_s + exp.experiment.drain_timeout_s
    hosts = host_units(exp)
    down: dict[str, list[tuple[float, float, int]]] = {}
    for i, entry in enumerate(exp.faults):
        start = _fault_start(entry)
        if start is not None and start[1] > latest:
            raise ConfigError(
                f"field 'faults.{i}.{start[0]}': value {start[1]:g} is after the run has ended "
                f"(arrivals end at {exp.experiment.duration_s:g} s, unfinished requests fail "
                f"{exp.experiment.drain_timeout_s:g} s later); allowed: <= {latest:g}")
        kind = getattr(entry, "kind", "")
        lost = hosts.get(getattr(entry, "host", ""), []) if kind == "host_loss" \
            else [getattr(entry, "unit", "")] if kind == "unit_loss" else []
        for unit in lost:
            at = float(getattr(entry, "at_s"))
            back = getattr(entry, "restart_after_s", None)
            end = float("inf") if back is None else at + back
            for a, b, j in down.get(unit, []):
                if a < end and at < b:
                    until = "for good" if b == float("inf") else f"until {b:g} s"
                    raise ConfigError(
                        f"field 'faults.{i}.at_s': value {at:g} loses {unit}, which faults.{j} "
                        f"already lost from {a:g} s {until}; allowed: a loss after it is back")
            down.setdefault(unit, []).append((at, end, i))


def machine_memory_bytes() -> float:
    """Physical memory of this machine, bytes (POSIX sysconf)."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_size(exp: Experiment, memory_bytes: float | None = None) -> None:
    """Refuse a run whose estimated peak memory exceeds ``experiment.max_memory_fraction`` of the
    machine's (``memory_bytes``, default this machine's), naming the estimate, or that would
    write more than ``MAX_TIMESERIES_ROWS`` timeseries rows (a tiny ``sample_interval_s``)."""
    size = estimate_run_size(exp, len(build_topology(exp).capacity))
    limit = exp.experiment.max_memory_fraction * (memory_bytes or machine_memory_bytes())
    if size.bytes > limit:
        raise ConfigError(
            f"run size: estimated {size.describe()} exceeds {limit / 1e9:.1f} GB "
            f"({exp.experiment.max_memory_fraction:g} of this machine's memory); allowed: a "
            "shorter experiment.duration_s, a lower workload.rate_per_s (or fewer "
            "workload.users) or a larger output.sample_interval_s")
    if size.timeseries_rows > MAX_TIMESERIES_ROWS:
        smallest = exp.output.sample_interval_s * size.timeseries_rows / MAX_TIMESERIES_ROWS
        raise ConfigError(
            f"field 'output.sample_interval_s': value {exp.output.sample_interval_s:g} makes "
            f"{size.timeseries_rows:.3g} timeseries rows ({size.series} series over "
            f"{exp.experiment.duration_s:g} s); allowed: at most {MAX_TIMESERIES_ROWS:.0e} rows, "
            f"i.e. sample_interval_s >= {smallest:.3g} (or a shorter experiment.duration_s)")


def check_fit(exp: Experiment) -> None:
    """Every pool's units hold the model's weights with room left for KV."""
    gb = 1e9
    for kind, pool in exp.pools.items():
        fit = fit_check(exp.model, pool.hardware, pool.chips_per_unit)
        if fit.kv_capacity_bytes <= 0:
            raise ConfigError(
                f"field '{kind}.chips_per_unit': value {pool.chips_per_unit} is too small: "
                f"{exp.model.name} weights ({fit.weight_bytes / gb:.1f} GB) exceed "
                f"{pool.chips_per_unit} x {pool.hardware.name} ({fit.capacity_bytes / gb:.1f} GB)"
            )

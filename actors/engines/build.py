"""Build an experiment's components by name: shared by the virtual and the ray engine."""

from __future__ import annotations

import zlib

import numpy as np

from disagg.actors.components.closed_loop import ClosedLoopGenerator
from disagg.actors.components.collector import Collector
from disagg.actors.components.decode import DecodeUnit
from disagg.actors.components.load_generator import (
    LoadGenerator,
    make_requests,
    slo_targets,
)
from disagg.actors.components.prefill import PrefillUnit
from disagg.actors.components.router import Router
from disagg.actors.components.store import ObjectStore
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.perf import fit_check
from disagg.cluster.records import UnitId
from disagg.cluster.workload.kinds import ClosedLoopWorkload
from disagg.cluster.workload.plan import ClosedLoop, check_workload
from disagg.fabric.component import Fabric
from disagg.fabric.topology import build_topology, unit_names
from disagg.policies import DECODE_ADMISSION, PREFILL_BATCHING, ROUTERS
from disagg.policies.base import PolicyContext, UnitView

CONTROL = ("collector", "router", "fabric", "loadgen")


def unit_ids(exp: Experiment) -> dict[str, UnitId]:
    """Every unit of the experiment by component name: its kind and index, as data."""
    return {u.name: u for kind, pool in (("prefill", exp.prefill), ("decode", exp.decode))
            for u in (UnitId(kind, i) for i in range(pool.units))}


def component_names(exp: Experiment) -> list[str]:
    """Every component of the experiment, control plane first."""
    names = [*CONTROL, *unit_names("prefill", exp.prefill.units),
             *unit_names("decode", exp.decode.units)]
    assert names[len(CONTROL):] == list(unit_ids(exp)), "unit names and ids disagree"
    return names


def component_rng(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible random stream per (root seed, component name)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def decode_kv_capacity(exp: Experiment) -> float:
    """KV bytes one decode unit can hold once its model copy is resident."""
    return fit_check(exp.model, exp.decode.hardware, exp.decode.chips_per_unit).kv_capacity_bytes


def policy_context(exp: Experiment, name: str) -> PolicyContext:
    return PolicyContext(
        exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit, exp.decode.hardware,
        exp.decode.chips_per_unit, component_rng(exp.experiment.seed, name + "/policy"),
    )


def initial_views(exp: Experiment) -> list[UnitView]:
    """What the router knows before any report: every unit up and empty."""
    cap = decode_kv_capacity(exp)
    return [UnitView(u, "prefill") for u in unit_names("prefill", exp.prefill.units)] + [
        UnitView(u, "decode", kv_capacity_bytes=cap) for u in unit_names("decode", exp.decode.units)
    ]


def check_experiment(exp: Experiment) -> None:
    """Checks that need the catalog, the performance models and the policy registries."""
    gb = 1e9
    for kind, pool in (("prefill", exp.prefill), ("decode", exp.decode)):
        fit = fit_check(exp.model, pool.hardware, pool.chips_per_unit)
        if fit.kv_capacity_bytes <= 0:
            raise ConfigError(
                f"field '{kind}.chips_per_unit': value {pool.chips_per_unit} is too small: "
                f"{exp.model.name} weights ({fit.weight_bytes / gb:.1f} GB) exceed "
                f"{pool.chips_per_unit} x {pool.hardware.name} ({fit.capacity_bytes / gb:.1f} GB)"
            )
    names = set(component_names(exp))
    for loss in exp.faults.unit_loss:
        if loss.unit not in names:
            raise ConfigError(f"field 'faults.unit_loss.unit': value {loss.unit!r} is not a unit "
                              f"of this experiment (prefill-0..{exp.prefill.units - 1}, "
                              f"decode-0..{exp.decode.units - 1})")
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
    exp: Experiment, name: str, clock: Clock, store: ObjectStore, control_delay_s: float = 0.0
) -> Component:
    """Construct the component called ``name`` with its own random stream and policies."""
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
                      control_delay_s)
    elif name == "fabric":
        comp = Fabric(name, clock, build_topology(exp), exp.fabric, control_delay_s,
                      exp.model.layers, exp.output.sample_interval_s, exp.output.event_log)
    else:
        raise KeyError(f"no component called {name!r}")
    return comp


def _build_unit(exp: Experiment, unit: UnitId, clock: Clock, store: ObjectStore,
                control_delay_s: float) -> Component:
    name = unit.name
    comp: PrefillUnit | DecodeUnit
    if unit.kind == "prefill":
        spec = exp.policies.prefill_batching
        comp = PrefillUnit(
            name, clock, exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit,
            PREFILL_BATCHING.create(spec.name, spec.params, policy_context(exp, name)),
            store, exp.output.payload_scale, exp.experiment.seed, exp.faults, control_delay_s,
            exp.experiment.load_report_interval_s, exp.fabric.layer_wise,
        )
    else:
        spec = exp.policies.decode_admission
        comp = DecodeUnit(
            name, clock, exp.model, exp.decode.hardware, exp.decode.chips_per_unit,
            DECODE_ADMISSION.create(spec.name, spec.params, policy_context(exp, name)),
            store, decode_kv_capacity(exp), control_delay_s, exp.experiment.load_report_interval_s,
        )
    comp.log = UnitLog(exp.output.sample_interval_s, exp.output.event_log)
    return comp


"""Build an experiment's components by name: shared by the virtual and the ray engine (and
``disagg serve``, whose gateway takes the load generator's place). The facts these read about an
experiment (names, capacities, faults) are pure and live in :mod:`disagg.cluster.facts`.

The kinds a run may not have, colocated units and the closed-loop load generator (with the
agentic workload's planning), are imported where they are built: a run loads only its own
(their nine modules cost ≈ 14 ms of CPU to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from disagg.actors.components.collector import Collector
from disagg.actors.components.decode import DecodeUnit
from disagg.actors.components.kept_kv import KeptKv
from disagg.actors.components.load_generator import LoadGenerator, make_requests
from disagg.actors.components.prefill import PrefillUnit
from disagg.actors.components.router import Router
from disagg.actors.components.spec_steps import SpecStepper
from disagg.actors.components.store import ObjectStore
from disagg.actors.components.token_feed import TokenFeed
from disagg.actors.components.unit_log import UnitLog
from disagg.actors.engines.faults import with_kv_faults
from disagg.cluster.component import Clock, Component
from disagg.cluster.config import DecodePoolConfig, Experiment
from disagg.cluster.facts import (
    closed_loop,
    component_rng,
    decode_kv_capacity,
    decode_paged_kv,
    experiment_faults,
    prefill_cache_blocks,
    slo_targets,
    unit_ids,
)
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS
from disagg.cluster.prefix_cache import PrefixCache
from disagg.cluster.records import UnitId
from disagg.cluster.topology import build_topology
from disagg.cluster.workload.kinds import AgenticWorkload, ClosedLoopWorkload
from disagg.cluster.workload.plan import ClosedLoop
from disagg.fabric.component import Fabric
from disagg.policies import DECODE_ADMISSION, PREFILL_BATCHING, ROUTERS
from disagg.policies.context import initial_views, policy_context

if TYPE_CHECKING:  # imported where built (see the module docstring)
    from disagg.actors.components.colocated import ColocatedUnit
    from disagg.cluster.workload.sessions import AgentSessions


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


def build_component(
    exp: Experiment, name: str, clock: Clock, store: ObjectStore, control_delay_s: float = 0.0,
    serving: bool = False,
) -> Component:
    """Construct the component called ``name`` with its own random stream and policies.

    ``serving`` (``disagg serve``): a :class:`Gateway` called ``gateway`` takes the load
    generator's place, the collector forwards every end to it and the units feed it token times."""
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
    if name == "collector":
        comp = Collector(name, clock, forward_ended_to="loadgen" if closed_loop(exp) else None)
    elif name == "loadgen" and isinstance(exp.workload, ClosedLoopWorkload):
        loop = ClosedLoop(exp.workload, slo_targets(exp), exp.experiment.duration_s, rng)
        comp = _closed_loop_generator(name, clock, loop)
    elif name == "loadgen" and isinstance(exp.workload, AgenticWorkload):
        comp = _closed_loop_generator(name, clock, agent_sessions(exp, rng))
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


def _closed_loop_generator(name: str, clock: Clock, loop: ClosedLoop | AgentSessions) -> Component:
    """The load generator of a closed-loop or agentic workload (imported here: see the module
    docstring)."""
    from disagg.actors.components.closed_loop import ClosedLoopGenerator

    return ClosedLoopGenerator(name, clock, loop)


def agent_sessions(exp: Experiment, rng: np.random.Generator) -> AgentSessions:
    """The agentic workload's tasks, planned from ``rng``, as sessions to run."""
    from disagg.cluster.workload.agentic import context_limit, plan_tasks  # see the module doc
    from disagg.cluster.workload.sessions import AgentSessions

    w = exp.workload
    assert isinstance(w, AgenticWorkload)
    limit = context_limit(w, exp.model.max_context_tokens)
    tasks = plan_tasks(w, exp.experiment.duration_s, limit, rng)
    return AgentSessions(tasks, slo_targets(exp), w.slo_class, exp.experiment.duration_s)


def _spec_stepper(exp: Experiment, name: str) -> SpecStepper | None:
    """Unit ``name``'s speculative stepping (its own draw streams), or None: plain decoding."""
    pool = exp.last_pool
    spec = pool.speculative if isinstance(pool, DecodePoolConfig) else None
    if spec is None:
        return None
    return SpecStepper(spec.speculation(), exp.model, pool.hardware, pool.chips_per_unit,
                       component_rng(exp.experiment.seed, f"{name}/speculative"))


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
            _kept_kv(exp), _spec_stepper(exp, name), decode_paged_kv(exp),
        )
    elif unit.kind == "colocated" and exp.colocated is not None:
        from disagg.actors.components.colocated import ColocatedUnit  # see the module docstring

        pool = exp.colocated
        comp = ColocatedUnit(
            name, clock, exp.model, pool.hardware, pool.chips_per_unit, decode_kv_capacity(exp),
            pool.token_budget, pool.max_running, control_delay_s,
            exp.experiment.load_report_interval_s, _spec_stepper(exp, name), pool.scheduler,
            decode_paged_kv(exp),
        )
    else:
        raise KeyError(f"no component called {name!r}")
    comp.log = UnitLog(exp.output.sample_interval_s, exp.output.event_log)
    return comp


def _serving_component(exp: Experiment, name: str, clock: Clock, store: ObjectStore,
                       control_delay_s: float) -> Component:
    """``build_component`` for ``disagg serve`` (see there)."""
    if name == "gateway":
        from disagg.actors.components.gateway import Gateway  # deferred: only `disagg serve`

        units = tuple(n for n, u in unit_ids(exp).items() if u.kind in ("prefill", "decode"))
        comp: Component = Gateway(name, clock, slo_targets(exp), units)
        comp.rng = component_rng(exp.experiment.seed, name)
        return comp
    if name == "collector":
        comp = Collector(name, clock, forward_ended_to="gateway")
        comp.rng = component_rng(exp.experiment.seed, name)
        return comp
    comp = build_component(exp, name, clock, store, control_delay_s)
    if isinstance(comp, PrefillUnit | DecodeUnit):
        comp.token_feed = TokenFeed("gateway")
    return comp

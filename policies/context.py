"""What an experiment's policies are built with: their :class:`PolicyContext` (one random stream
per component), the router's first view of the units, and the check that every configured policy
exists and accepts its parameters."""

from __future__ import annotations

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.facts import component_rng, decode_kv_capacity
from disagg.cluster.topology import unit_names
from disagg.policies import DECODE_ADMISSION, PREFILL_BATCHING, ROUTERS
from disagg.policies.base import PolicyContext, UnitView


def policy_context(exp: Experiment, name: str) -> PolicyContext:
    """What policies read; a colocated pool stands for both the prefill and the decode side."""
    first, last = exp.first_pool, exp.last_pool
    return PolicyContext(
        exp.model, first.hardware, first.chips_per_unit, last.hardware, last.chips_per_unit,
        component_rng(exp.experiment.seed, name + "/policy"),
    )


def initial_views(exp: Experiment) -> list[UnitView]:
    """What the router knows before any report: every unit up and empty (KV bytes free)."""
    cap = decode_kv_capacity(exp)
    return [UnitView(u, kind, kv_capacity_bytes=float("inf") if kind == "prefill" else cap)  # type: ignore[arg-type]
            for kind, pool in exp.pools.items() for u in unit_names(kind, pool.units)]


def check_policies(exp: Experiment) -> None:
    """Every configured policy is registered and accepts its parameters (named by field)."""
    ctx = policy_context(exp, "check")
    for field, registry in (("router", ROUTERS), ("prefill_batching", PREFILL_BATCHING),
                            ("decode_admission", DECODE_ADMISSION)):
        spec = getattr(exp.policies, field)
        try:
            registry.create(spec.name, spec.params, ctx)  # type: ignore[attr-defined]
        except ConfigError as e:
            raise ConfigError(f"field 'policies.{field}': {e}") from None

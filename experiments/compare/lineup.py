"""Line clusters up at an equal budget: ``disagg compare EXP_A EXP_B ... --equal cost|power|racks``.

Each experiment is a cluster. The first one is the reference: its budget (dollars per hour, watts,
or racks) is what every other cluster gets. Rounding rule: a cluster's units are scaled by one
factor ``f = reference budget / its budget`` across all its pools and rounded **down**
(``units = max(1, floor(units x f))``); then, while budget is left, whole units are added one at a
time to the pools in their order (prefill before decode) as long as the cluster stays within the
reference budget. So no cluster exceeds the reference except when a pool is already at its
minimum of one unit; the achieved budget and its ratio to the reference are reported.
``--equal none`` runs the clusters as given.

Every cluster sees the first experiment's workload, SLOs, seed, duration and drain timeout — the
identical request stream — and keeps its own model (precision), pools and policies.

Budgets per unit: cost = ``price_per_unit_hour_usd`` (catalog or pool override); power =
``power_per_unit_w`` (chips x catalog or pool power); racks = hosts x rack units per host / 42
(rack units below).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.pool_config import PoolConfig
from disagg.experiments.checks import check_experiment
from disagg.experiments.compare.runs import PolicyChoice, RunPlan, variant

EQUAL = ("cost", "power", "racks", "none")
RACK_UNITS = 42  # a standard 19-inch rack
# rack units (U) one host of each hardware occupies
RACK_UNITS_PER_HOST: dict[str, tuple[float, str]] = {
    "h100": (8.0, "NVIDIA DGX H100 datasheet: 8U system, 8 GPUs"),
    "h200": (8.0, "NVIDIA DGX H200 datasheet: 8U system, 8 GPUs"),
    "b200": (10.0, "NVIDIA DGX B200 datasheet: 10U system, 8 GPUs"),
    "cs3": (15.0, "Cerebras CS-3 datasheet: 15U per system"),
    "trainium2": (8.0, "assumption: a 16-chip trn2 server in 8U (AWS publishes no rack layout)"),
    "trainium3": (32.0, "assumption: a 64-chip Trn3 UltraServer host in 32U (unpublished)"),
}


@dataclass(frozen=True)
class LinedUp:
    """One cluster after scaling: its experiment, unit counts and budget against the reference."""

    label: str
    experiment: Experiment
    units: dict[str, int]  # pool kind -> units
    budget: float | None  # in the line-up's unit ($/h, W, racks); None for --equal none
    ratio: float | None  # budget / reference budget


def _pool_cost(pool: PoolConfig, where: str) -> float:
    price = pool.price_per_unit_hour_usd
    if price is None:
        raise ConfigError(f"field '{where}.price_per_chip_hour_usd': value None is not allowed "
                          f"for --equal cost: {pool.hardware.name} has no catalog price; set one")
    return pool.units * price


def _pool_power(pool: PoolConfig, where: str) -> float:
    power = pool.power_per_unit_w
    if power is None:
        raise ConfigError(f"field '{where}.power_per_chip_w': value None is not allowed for "
                          f"--equal power: {pool.hardware.name} has no catalog power; set one")
    return pool.units * power


def _pool_racks(pool: PoolConfig, where: str) -> float:
    entry = RACK_UNITS_PER_HOST.get(pool.hardware.name)
    if entry is None:
        raise ConfigError(f"field '{where}.hardware': value {pool.hardware.name!r} has no rack "
                          f"size for --equal racks; allowed: {', '.join(sorted(RACK_UNITS_PER_HOST))}")
    span = math.ceil(pool.chips_per_unit / pool.hardware.chips_per_host)
    hosts = pool.units * span if span > 1 else math.ceil(pool.units / pool.hosts_units)
    return hosts * entry[0] / RACK_UNITS


BUDGETS: dict[str, Callable[[PoolConfig, str], float]] = {
    "cost": _pool_cost, "power": _pool_power, "racks": _pool_racks}


def budget(exp: Experiment, equal: str, source: str = "<experiment>") -> float:
    """The cluster's budget: $/h (cost), W (power) or racks (racks), summed over its pools."""
    per_pool = BUDGETS[equal]
    try:
        return sum(per_pool(pool, kind) for kind, pool in exp.pools.items())
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def scaled(exp: Experiment, factor: float) -> Experiment:
    """``exp`` with every pool's units multiplied by ``factor``, rounded down, at least 1."""
    update = {kind: pool.model_copy(update={"units": max(1, math.floor(pool.units * factor + 1e-9))})
              for kind, pool in exp.pools.items()}
    return exp.model_copy(update=update)


def filled(exp: Experiment, equal: str, target: float) -> Experiment:
    """``exp`` with whole units added, pool by pool in order, while its budget stays <= target."""
    per_pool = BUDGETS[equal]
    grew = True
    while grew:
        grew = False
        for kind, pool in exp.pools.items():
            bigger = pool.model_copy(update={"units": pool.units + 1})
            extra = per_pool(bigger, kind) - per_pool(pool, kind)
            if budget(exp, equal) + extra <= target * (1 + 1e-9):
                exp = exp.model_copy(update={kind: bigger})
                grew = True
    return exp


def common_stream(exp: Experiment, reference: Experiment) -> Experiment:
    """``exp`` with the reference's workload, SLOs, seed, duration, drain timeout and engine."""
    section = exp.experiment.model_copy(update={
        k: getattr(reference.experiment, k) for k in ("seed", "duration_s", "drain_timeout_s",
                                                      "engine", "dilation")})
    return exp.model_copy(update={"experiment": section, "workload": reference.workload,
                                  "slo": reference.slo})


def line_up(experiments: list[Experiment], equal: str, sources: list[str]) -> list[LinedUp]:
    """Scale every cluster to the first one's budget (see the module docstring for the rule)."""
    if equal not in EQUAL:
        raise ConfigError(f"--equal: value {equal!r} is not allowed; allowed: {', '.join(EQUAL)}")
    labels = [e.experiment.name for e in experiments]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"experiments: names {labels} repeat; allowed: distinct experiment names")
    reference = experiments[0]
    out = []
    for exp, label, source in zip(experiments, labels, sources, strict=True):
        exp = common_stream(exp, reference)
        if equal == "none":
            out.append(LinedUp(label, exp, {k: p.units for k, p in exp.pools.items()}, None, None))
            continue
        target = budget(reference, equal, sources[0])
        exp = filled(scaled(exp, target / budget(exp, equal, source)), equal, target)
        got = budget(exp, equal)
        out.append(LinedUp(label, exp, {k: p.units for k, p in exp.pools.items()}, got,
                           got / target))
    return out


def plan_lineup(lined: list[LinedUp], rates: list[float] | None, repeats: int,
                engine: str | None = None) -> list[RunPlan]:
    """Every (cluster, rate, repeat) run; a cluster takes the place of a policy in the report
    (its label is the experiment name; its router is its own)."""
    if repeats < 1:
        raise ConfigError(f"--repeats: value {repeats} is not allowed; allowed: an integer >= 1")
    base = lined[0].experiment
    if rates and "rate_per_s" not in type(base.workload).model_fields:
        raise ConfigError(f"--rates: a {base.workload.kind} workload has no arrival rate to set; "
                          "allowed: omit --rates")
    rates = rates or [float(getattr(base.workload, "rate_per_s", 0.0) or 0.0)]
    engine = engine or base.experiment.engine
    seed0 = base.experiment.seed
    plans = []
    for c in lined:
        router = c.experiment.policies.router
        choice = PolicyChoice(c.label, router.name, dict(router.params))
        check_experiment(variant(c.experiment, choice, rates[0], seed0, engine))
        plans += [(r, k, RunPlan(choice, r, k, variant(c.experiment, choice, r, seed0 + k, engine)))
                  for r in rates for k in range(repeats)]
    return [p for _, _, p in sorted(plans, key=lambda t: (t[0], t[1]))]


def lineup_manifest(lined: list[LinedUp], equal: str) -> dict[str, object]:
    """What compare.json records about the line-up: the rule and each cluster's units and budget."""
    unit = {"cost": "usd_per_hour", "power": "watts", "racks": "racks", "none": None}[equal]
    return {"equal": equal, "budget_unit": unit,
            "rounding": "units = max(1, floor(units x f)), then whole units added in pool order "
                        "while within the reference budget",
            "clusters": [{"label": c.label, "units": c.units, "budget": c.budget,
                          "budget_ratio": c.ratio} for c in lined]}

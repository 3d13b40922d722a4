"""``disagg plan --robust`` after the plan: the measured candidates become contenders, the
``[robust]`` table and the catalog give the dimensions, a seeded Latin hypercube gives the points,
capacities come from the cached evaluator (the plan's own at the default point), and the analysis
is written to ``robust.json``, ``robust.parquet`` and ``robust.html`` in the plan folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from disagg.actors.engines.parallel import parallel_session
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.plan.bounds import workload_shape
from disagg.experiments.plan.candidates import candidate_experiment
from disagg.experiments.plan.runner import PlanResult
from disagg.experiments.plan.search import EVALUATED, PRUNED
from disagg.experiments.plan.space import SearchSpace
from disagg.experiments.robust.analysis import Analysis, analyse
from disagg.experiments.robust.core import (
    Contender,
    Point,
    best_index,
    default_point,
    latin_hypercube,
    objectives,
    projection,
)
from disagg.experiments.robust.dimensions import Dimension, RobustSettings, dimensions
from disagg.experiments.robust.evaluate import CachedCapacities, Progress
from disagg.experiments.robust.model_error import capacity_error, hardware_errors
from disagg.experiments.robust.output import write_robust

JOURNAL = "robust-evaluations.jsonl"


@dataclass(frozen=True)
class RobustResult:
    """The analysis, where it was written, and how many evaluations ran / came from the cache."""

    analysis: Analysis
    contenders: tuple[Contender, ...]
    out_dir: Path
    evaluations_run: int
    evaluations_cached: int


def contender(exp: Experiment, key: str, label: str, family: str, racks: float | None,
              space: SearchSpace) -> Contender:
    """A measured candidate's denominator parts: chips, USD per chip-hour, W per chip."""
    chips: dict[str, int] = {}
    price: dict[str, float] = {}
    power: dict[str, float] = {}
    spec = False
    for pool in exp.pools.values():
        hw = pool.hardware.name
        chips[hw] = chips.get(hw, 0) + pool.units * pool.chips_per_unit
        if pool.price_per_unit_hour_usd is not None:
            price[hw] = pool.price_per_unit_hour_usd / pool.chips_per_unit
        facts = space.hardware.get(hw)
        watts = facts.power_w if facts is not None and facts.power_w else pool.hardware.power_w
        if watts is not None:
            power[hw] = watts
        spec = spec or getattr(pool, "speculative", None) is not None
    return Contender(key, label, family, tuple(sorted(chips.items())),
                     tuple(sorted(price.items())), tuple(sorted(power.items())), racks, spec)


def space_defaults(space: SearchSpace) -> dict[str, float]:
    """``hardware.field`` defaults the space file sets (price and power)."""
    out = {}
    for hw, facts in space.hardware.items():
        if facts.price_per_chip_hour_usd is not None:
            out[f"{hw}.price_per_hour_usd"] = facts.price_per_chip_hour_usd
        if facts.power_w is not None:
            out[f"{hw}.power_w"] = facts.power_w
    return out


def prefetch_requests(cs: Sequence[Contender], dims: Sequence[Dimension],
                      points: Sequence[Point]) -> list[tuple[Contender, Point]]:
    """Every evaluation the analysis needs before its bisections: each point, and each
    dimension's two ends with the others at default (tornado and break-even brackets)."""
    base = default_point(dims)
    ends = [{**base, d.name: x} for d in dims if d.kind == "perf" for x in (d.low, d.high)]
    return [(c, p) for p in [*points, *ends] for c in cs]


def run_robust(base: Experiment, space: SearchSpace, settings: RobustSettings, plan: PlanResult,
               use_ray: bool = True, address: str | None = None,
               progress: Progress | None = None, stop: StopFlag | None = None,
               against: Sequence[str] = ()) -> RobustResult:
    """Analyse ``plan``'s decision over the assumption space; see the module docstring.
    ``against``: hardware names whose best candidate alone each price is also compared with."""
    metric = space.objective.maximize
    # pruned candidates too: dominated at the default prices, they may win at others
    measured = [r for r in plan.rows if r.status in (EVALUATED, PRUNED)]
    if not any((r.capacity_per_s or 0) > 0 for r in measured):
        raise ConfigError("--robust: the plan measured no candidate with a capacity at the SLO; "
                          "allowed: a space whose candidates meet the target at some rate")
    exps = {r.candidate.key: candidate_experiment(base, r.candidate, space) for r in measured}
    cs = [contender(exps[r.candidate.key], r.candidate.key, r.candidate.label, r.candidate.family,
                    r.racks, space) for r in measured]
    used = set().union(*(c.hardware for c in cs))
    dims = dimensions(settings, used, metric, space_defaults(space), any(c.speculative for c in cs))
    points = latin_hypercube(dims, settings.samples, settings.seed)
    folder = plan.out_dir
    table = None if settings.capacity_error is not None else hardware_errors()
    with parallel_session(use_ray, address) as width:
        fetch = CachedCapacities(folder / JOURNAL, exps, dims, workload_shape(base),
                                 space, use_ray, width, progress, stop,
                                 {c.key: c.label for c in cs})
        cached = fetch.resumed
        base_point = default_point(dims)
        for r, c in zip(measured, cs, strict=True):
            if r.status == EVALUATED:
                fetch.seed((c.key, projection(c, base_point, dims)), r.capacity_per_s or 0.0)
        at_default = fetch([(c, base_point) for c in cs])  # pruned at the default: 0
        fetch.keep = {cs[best_index(cs, objectives(cs, base_point, at_default, metric))].key}
        fetch(prefetch_requests(cs, dims, points))
        result = analyse(cs, dims, points, metric,
                         lambda c: capacity_error(c.hardware, settings.capacity_error, table),
                         fetch, against)
    write_robust(folder, result, settings, base.experiment.name)
    return RobustResult(result, tuple(cs), folder, fetch.runs, cached)

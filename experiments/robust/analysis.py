"""The decision over the assumption space: per point who is best and who is on the frontier,
each contender's shares, break-even values, the tornado of the default winner and the
model-error bands — the content of robust.json, robust.parquet and robust.html."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from disagg.experiments.robust.core import (
    BreakEven,
    Capacities,
    Contender,
    Point,
    best_index,
    break_even,
    capacities_at,
    default_point,
    objectives,
    on_frontier,
)
from disagg.experiments.robust.dimensions import Dimension

ITERATIONS = {"perf": 6, "price": 40, "power": 40}  # bisection steps (perf steps cost runs)


@dataclass(frozen=True)
class Share:
    """A contender's share of the sampled points where it is best / on the frontier."""

    key: str
    label: str
    family: str
    best: float
    frontier: float


@dataclass(frozen=True)
class TornadoBar:
    """The default winner's objective with one dimension at its low and at its high end, and
    the best contender there."""

    dimension: str
    low: float
    high: float
    objective_at_low: float
    objective_at_high: float
    winner_at_low: str
    winner_at_high: str


@dataclass(frozen=True)
class Band:
    """A contender's capacity at default with the models' relative error: low / high."""

    key: str
    label: str
    error: float
    capacity: float
    objective_low: float
    objective_high: float


@dataclass(frozen=True)
class Analysis:
    """Everything the robust plan reports (rows: one dict per sampled point and contender)."""

    metric: str
    dims: tuple[Dimension, ...]
    winner: str
    winner_objective: float
    shares: tuple[Share, ...]
    break_evens: tuple[BreakEven, ...]
    against: tuple[tuple[str, BreakEven], ...]  # (hardware, break-even against its best alone)
    tornado: tuple[TornadoBar, ...]
    bands: tuple[Band, ...]
    band_holds: bool  # the winner's low objective still beats every other family's high
    rows: tuple[dict[str, Any], ...]


def point_rows(cs: Sequence[Contender], points: Sequence[Point], metric: str,
               fetch: Capacities) -> list[dict[str, Any]]:
    """One row per (point, contender): the point's values, capacity, denominator, objective,
    whether it is the best there and on the frontier."""
    rows = []
    for i, p in enumerate(points):
        caps = capacities_at(cs, p, fetch)
        objs = objectives(cs, p, caps, metric)
        top, front = best_index(cs, objs), on_frontier(cs, p, caps, metric)
        for j, c in enumerate(cs):
            rows.append({"point": i, **{f"dim:{k}": v for k, v in p.items()}, "key": c.key,
                         "label": c.label, "family": c.family, "capacity_per_s": caps[j],
                         "denominator": c.denominator(metric, p), "objective": objs[j],
                         "is_best": j == top, "on_frontier": front[j]})
    return rows


def shares(cs: Sequence[Contender], rows: Sequence[dict[str, Any]], n_points: int) -> list[Share]:
    """Each contender's share of the points where it is best and where it is on the frontier."""
    out = []
    for c in cs:
        mine = [r for r in rows if r["key"] == c.key]
        out.append(Share(c.key, c.label, c.family, sum(r["is_best"] for r in mine) / n_points,
                         sum(r["on_frontier"] for r in mine) / n_points))
    return sorted(out, key=lambda s: (-s.best, -s.frontier, s.key))


def tornado(cs: Sequence[Contender], dims: Sequence[Dimension], metric: str, winner: int,
            fetch: Capacities) -> list[TornadoBar]:
    """The default winner's objective at each dimension's low and high (others at default),
    widest swing first."""
    base = default_point(dims)
    bars = []
    for d in dims:
        ends = []
        for x in (d.low, d.high):
            p = {**base, d.name: x}
            objs = objectives(cs, p, capacities_at(cs, p, fetch), metric)
            ends.append((objs[winner], cs[best_index(cs, objs)].label))
        bars.append(TornadoBar(d.name, d.low, d.high, ends[0][0], ends[1][0], ends[0][1],
                               ends[1][1]))
    return sorted(bars, key=lambda b: -abs(b.objective_at_high - b.objective_at_low))


def bands(cs: Sequence[Contender], dims: Sequence[Dimension], metric: str,
          error: Callable[[Contender], float], fetch: Capacities) -> list[Band]:
    """Capacity x (1 -/+ error) at the default point, as objectives."""
    base = default_point(dims)
    caps = capacities_at(cs, base, fetch)
    objs = objectives(cs, base, caps, metric)
    return [Band(c.key, c.label, error(c), cap, o * (1 - error(c)), o * (1 + error(c)))
            for c, cap, o in zip(cs, caps, objs, strict=True) if cap > 0]


def against(cs: Sequence[Contender], dims: Sequence[Dimension], metric: str,
            hardware: Sequence[str], fetch: Capacities) -> list[tuple[str, BreakEven]]:
    """Break-even of each price or power dimension between the best contender using its
    hardware and the best contender built of each named hardware alone."""
    out = []
    for d in (d for d in dims if d.kind != "perf"):
        for hw in hardware:
            alone = [c for c in cs if c.hardware == {hw}]
            b = break_even(d, [c for c in cs if c.uses(d)] + alone, dims, metric, fetch,
                           ITERATIONS[d.kind]) if alone else None
            if b is not None:
                out.append((hw, b))
    return out


def analyse(cs: Sequence[Contender], dims: Sequence[Dimension], points: Sequence[Point],
            metric: str, error: Callable[[Contender], float], fetch: Capacities,
            against_hardware: Sequence[str] = ()) -> Analysis:
    """The whole analysis over the sampled ``points``; ``against_hardware``: also the break-even
    of each price (or power) against the best candidate of each of those hardware alone."""
    base = default_point(dims)
    caps = capacities_at(cs, base, fetch)
    objs = objectives(cs, base, caps, metric)
    top = best_index(cs, objs)
    rows = point_rows(cs, points, metric, fetch)
    evens = [b for d in dims if (b := break_even(d, cs, dims, metric, fetch,
                                                 ITERATIONS[d.kind])) is not None]
    bars = tornado(cs, dims, metric, top, fetch)
    bnds = bands(cs, dims, metric, error, fetch)
    mine = next(b for b in bnds if b.key == cs[top].key)
    family = {c.key: c.family for c in cs}
    holds = all(mine.objective_low >= b.objective_high for b in bnds
                if family[b.key] != family[mine.key])
    return Analysis(metric, tuple(dims), cs[top].label, objs[top],
                    tuple(shares(cs, rows, len(points))), tuple(evens),
                    tuple(against(cs, dims, metric, against_hardware, fetch)), tuple(bars),
                    tuple(bnds), holds, tuple(rows))

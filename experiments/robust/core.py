"""The robust plan's arithmetic, free of any engine: contenders, sample points, who wins where,
break-even values by bisection, the tornado and the model-error bands.

A **point** maps every dimension's name (``hardware.field``) to a value. Capacities come from a
:data:`Capacities` function (a batch of (contender, point) -> req/s); the real one runs the
virtual engine and caches (evaluate.py), tests inject their own. Price and power dimensions never
reach it: the objective's denominator is re-scored analytically (:meth:`Contender.denominator`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from disagg.experiments.plan.candidates import objective_value
from disagg.experiments.robust.dimensions import PER_DOLLAR, Dimension

Point = Mapping[str, float]
Capacities = Callable[[Sequence[tuple["Contender", Point]]], list[float]]


@dataclass(frozen=True)
class Contender:
    """A candidate measured at the default point: what its denominator is made of. ``chips``,
    ``price`` (USD per chip-hour) and ``power`` (W per chip) are per hardware name."""

    key: str
    label: str
    family: str
    chips: tuple[tuple[str, int], ...]
    price: tuple[tuple[str, float], ...]
    power: tuple[tuple[str, float], ...] = ()
    racks: float | None = None
    speculative: bool = False

    @property
    def hardware(self) -> set[str]:
        """The hardware names the candidate's pools use."""
        return {hw for hw, _ in self.chips}

    def uses(self, dim: Dimension) -> bool:
        """True when ``dim`` can change this candidate (its hardware, or ``any`` and speculation)."""
        return dim.hardware in self.hardware or (dim.hardware == "any" and self.speculative)

    def denominator(self, metric: str, point: Point) -> float | None:
        """USD per hour, kW or racks at ``point`` (a price or power dimension replaces the
        default per-chip figure of its hardware)."""
        if metric == "goodput_per_rack":
            return self.racks
        field, per = (("price_per_hour_usd", dict(self.price)) if metric in PER_DOLLAR
                      else ("power_w", dict(self.power)))
        total = 0.0
        for hw, n in self.chips:
            value = point.get(f"{hw}.{field}", per.get(hw))
            if value is None:
                return None
            total += n * value
        return total if metric in PER_DOLLAR else total / 1e3


def projection(c: Contender, point: Point, dims: Sequence[Dimension]) -> tuple[tuple[str, float], ...]:
    """The performance values of ``point`` that can change ``c``'s capacity (its cache key)."""
    return tuple((d.name, float(point[d.name])) for d in dims if d.kind == "perf" and c.uses(d))


def default_point(dims: Sequence[Dimension]) -> dict[str, float]:
    """Every dimension at its default."""
    return {d.name: d.default for d in dims}


def latin_hypercube(dims: Sequence[Dimension], n: int, seed: int) -> list[dict[str, float]]:
    """``n`` points stratified per dimension (one per n-quantile of each range, in a seeded random
    pairing): a space-filling sample whose every margin covers the range evenly."""
    rng = np.random.default_rng(seed)
    cols = {}
    for d in dims:
        u = (rng.permutation(n) + rng.random(n)) / n
        cols[d.name] = d.low + u * (d.high - d.low)
    return [{name: float(v[i]) for name, v in cols.items()} for i in range(n)]


def objectives(cs: Sequence[Contender], point: Point, caps: Sequence[float],
               metric: str) -> list[float]:
    """Each contender's objective at ``point`` (0 when a denominator is unknown)."""
    return [objective_value(metric, cap, c.denominator(metric, point)) or 0.0
            for c, cap in zip(cs, caps, strict=True)]


def best_index(cs: Sequence[Contender], objs: Sequence[float]) -> int:
    """The contender with the highest objective (ties: smaller key)."""
    return max(range(len(cs)), key=lambda i: (objs[i], [-ord(ch) for ch in cs[i].key]))


def on_frontier(cs: Sequence[Contender], point: Point, caps: Sequence[float],
                metric: str) -> list[bool]:
    """Pareto frontier of denominator (lower better) against capacity (higher better), as in the
    plan (a contender with no capacity is on no frontier; exact ties keep the smaller key)."""
    den = [c.denominator(metric, point) or float("inf") for c in cs]
    out = []
    for i in range(len(cs)):
        beaten = caps[i] <= 0 or any(
            j != i and den[j] <= den[i] and caps[j] >= caps[i]
            and (den[j] < den[i] or caps[j] > caps[i] or cs[j].key < cs[i].key)
            for j in range(len(cs)))
        out.append(not beaten)
    return out


def capacities_at(cs: Sequence[Contender], point: Point, fetch: Capacities) -> list[float]:
    """Every contender's capacity at one point."""
    return fetch([(c, point) for c in cs])


@dataclass(frozen=True)
class BreakEven:
    """Where the best contender using ``dimension``'s hardware and the best of the others swap
    (others at default): ``value`` None when they do not swap in [low, high]."""

    dimension: str
    low: float
    high: float
    value: float | None
    with_wins_at_low: bool  # the side using the hardware wins at the range's low end
    with_wins_at_high: bool
    with_best: str  # labels of each side's best at the break-even (or at default)
    without_best: str
    outside: float | None = None  # price / power: where they swap beyond the range, if anywhere
    searched_beyond: bool = False  # beyond the range was searched (price / power)
    with_never: bool = False  # no contender using the hardware met the target at any rate

    def sentence(self, hardware: str) -> str:
        """One line for a design review."""
        if self.with_never:
            return (f"{self.dimension}: candidates with {hardware} meet the SLO target at no "
                    f"rate searched in [{self.low:.4g}, {self.high:.4g}] (others at default)")
        if self.value is None:
            side = "with" if self.with_wins_at_low else "without"
            beyond = "" if self.outside is None else f" (they would swap at {self.outside:.4g})"
            if self.outside is None and self.searched_beyond:
                beyond = " (and at any value from 1/1000 of low to 1000 x high)"
            return (f"{self.dimension}: no break-even in [{self.low:.4g}, {self.high:.4g}] — "
                    f"candidates {side} {hardware} win across it{beyond}")
        below = "below" if self.with_wins_at_low else "above"
        return (f"{self.dimension}: candidates with {hardware} win {below} {self.value:.4g} "
                f"({self.with_best} vs {self.without_best})")


def break_even(dim: Dimension, cs: Sequence[Contender], dims: Sequence[Dimension], metric: str,
               fetch: Capacities, iterations: int) -> BreakEven | None:
    """Bisection on ``dim`` (others at default) for the value where the best contender using
    its hardware ties the best of the rest; None when either side has no contender."""
    with_ = [c for c in cs if c.uses(dim)]
    without = [c for c in cs if not c.uses(dim)]
    if not with_ or not without:
        return None
    base = default_point(dims)

    def sides(x: float) -> tuple[float, int, float, int]:
        point = {**base, dim.name: x}
        a = objectives(with_, point, capacities_at(with_, point, fetch), metric)
        b = objectives(without, point, capacities_at(without, point, fetch), metric)
        ia, ib = best_index(with_, a), best_index(without, b)
        return a[ia], ia, b[ib], ib

    def bisect(lo: float, hi: float, win_lo: bool) -> float:
        for _ in range(iterations):
            mid = (lo + hi) / 2
            a, _, b, _ = sides(mid)
            lo, hi = (mid, hi) if (a > b) == win_lo else (lo, mid)
        return (lo + hi) / 2

    a_lo, _, b_lo, _ = sides(dim.low)
    a_hi, _, b_hi, _ = sides(dim.high)
    win_lo, win_hi = a_lo > b_lo, a_hi > b_hi
    value = outside = None
    if win_lo != win_hi:
        value = bisect(dim.low, dim.high, win_lo)
    elif dim.kind != "perf":  # analytic: look beyond the range (1/1000 x low .. 1000 x high)
        lo, hi = (dim.low / 1e3, dim.low) if not win_lo else (dim.high, dim.high * 1e3)
        a, _, b, _ = sides(lo)
        a_far, _, b_far, _ = sides(hi)
        if (a > b) != (a_far > b_far):
            outside = bisect(lo, hi, a > b)
    a_at, ia, _, ib = sides(dim.default if value is None else value)
    never = value is None and max(a_lo, a_hi, a_at) <= 0
    return BreakEven(dim.name, dim.low, dim.high, value, win_lo, win_hi, with_[ia].label,
                     without[ib].label, outside, dim.kind != "perf", never)

"""A robust line-up's arithmetic, free of any engine: who wins a line-up at an assumption point,
each cluster's share of the sampled space, break-even values by bisection and the tornado.

A line-up (``disagg compare A.toml B.toml ... --equal cost|power|racks|none``) decides which
cluster serves the most at the line-up's budget. Its **score** at a point is, per cluster,
(capacity, goodput): the capacity over the rates given (req/s: the highest rate whose mean SLO
attainment meets the target with every lower rate meeting it too, 0 if none does), ties broken
by the goodput at the highest rate (req/s of requests within their SLO, mean over repeats). The
cells come from a :data:`Cells` function (a batch of points -> per point, one :class:`Cell` per
cluster in line-up order); the real one re-lines-up and runs (lineup_eval.py), tests inject theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from disagg.experiments.robust.core import Point, default_point
from disagg.experiments.robust.dimensions import Dimension

ITERATIONS = {"perf": 6, "price": 40, "power": 40}  # bisection steps (a perf step costs runs)


@dataclass(frozen=True)
class Cell:
    """One cluster of the line-up at one point: goodput (req/s within SLO) at the highest rate,
    capacity (req/s, 0 when no rate meets the target), its units per pool and its cost (USD per
    hour at the point's prices; None when a price is unknown)."""

    goodput_per_s: float
    capacity_per_s: float = 0.0
    units: tuple[tuple[str, int], ...] = ()
    usd_per_hour: float | None = None

    @property
    def score(self) -> tuple[float, float]:
        """What the line-up ranks by: capacity, then goodput at the highest rate."""
        return (self.capacity_per_s, self.goodput_per_s)

    @property
    def good_requests_per_usd(self) -> float | None:
        """Requests within SLO per US dollar at the highest rate (None without a cost)."""
        if not self.usd_per_hour:
            return None
        return self.goodput_per_s * 3600.0 / self.usd_per_hour


Cells = Callable[[Sequence[Point]], list[list[Cell]]]


def winner(cells: Sequence[Cell]) -> int:
    """The index of the best cluster (highest score; ties: the earlier in the line-up)."""
    return max(range(len(cells)), key=lambda i: (cells[i].score, -i))


@dataclass(frozen=True)
class LineupBreakEven:
    """Where the winner of the line-up changes along ``dimension`` (others at default):
    ``value`` None when the same cluster wins at both ends of [low, high]."""

    dimension: str
    low: float
    high: float
    value: float | None
    winner_at_low: str
    winner_at_high: str

    def sentence(self) -> str:
        """One line for a design review."""
        span = f"[{self.low:.4g}, {self.high:.4g}]"
        if self.value is None:
            return (f"{self.dimension}: no break-even in {span} — {self.winner_at_low} wins at "
                    "both ends (others at default)")
        return (f"{self.dimension}: {self.winner_at_low} wins below {self.value:.4g}, "
                f"{self.winner_at_high} above (in {span}, others at default)")


@dataclass(frozen=True)
class LineupBar:
    """The default winner's goodput (req/s) with one dimension at its low and high end, and
    who wins there."""

    dimension: str
    low: float
    high: float
    goodput_at_low: float
    goodput_at_high: float
    winner_at_low: str
    winner_at_high: str


@dataclass(frozen=True)
class LineupAnalysis:
    """Everything a robust line-up reports (rows: one dict per point and cluster; point -1 is
    the default point)."""

    equal: str
    labels: tuple[str, ...]
    dims: tuple[Dimension, ...]
    winner: str
    winner_goodput: float
    winner_capacity: float
    shares: tuple[tuple[str, float], ...]  # (cluster, share of sampled points where it wins)
    break_evens: tuple[LineupBreakEven, ...]
    tornado: tuple[LineupBar, ...]
    rows: tuple[dict[str, Any], ...]


def point_rows(labels: Sequence[str], points: Sequence[Point], cells: Sequence[Sequence[Cell]],
               first: int = 0) -> list[dict[str, Any]]:
    """One row per (point, cluster): the point's values, units, cost, goodput, capacity, and
    whether it wins there."""
    rows = []
    for i, (p, cs) in enumerate(zip(points, cells, strict=True)):
        top = winner(cs)
        for j, (label, c) in enumerate(zip(labels, cs, strict=True)):
            rows.append({"point": first + i, **{f"dim:{k}": v for k, v in p.items()},
                         "cluster": label, "units": ", ".join(f"{n} {k}" for k, n in c.units),
                         "usd_per_hour": c.usd_per_hour, "goodput_per_s": c.goodput_per_s,
                         "capacity_per_s": c.capacity_per_s,
                         "good_requests_per_usd": c.good_requests_per_usd, "is_best": j == top})
    return rows


def shares(labels: Sequence[str], cells: Sequence[Sequence[Cell]]) -> list[tuple[str, float]]:
    """Each cluster's share of the points where it wins, most first."""
    wins = [winner(cs) for cs in cells]
    out = [(label, sum(w == j for w in wins) / max(1, len(wins))) for j, label in enumerate(labels)]
    return sorted(out, key=lambda s: -s[1])


def break_even(dim: Dimension, labels: Sequence[str], dims: Sequence[Dimension], fetch: Cells,
               iterations: int) -> LineupBreakEven:
    """Bisection on ``dim`` (others at default) for the value where the winner at the low end
    stops winning; with more than two clusters, one such change (the winners at both ends are
    reported)."""
    base = default_point(dims)

    def top(x: float) -> int:
        return winner(fetch([{**base, dim.name: x}])[0])

    w_lo, w_hi = top(dim.low), top(dim.high)
    value = None
    if w_lo != w_hi:
        lo, hi = dim.low, dim.high
        for _ in range(iterations):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if top(mid) == w_lo else (lo, mid)
        value = (lo + hi) / 2
    return LineupBreakEven(dim.name, dim.low, dim.high, value, labels[w_lo], labels[w_hi])


def tornado(labels: Sequence[str], dims: Sequence[Dimension], top: int,
            fetch: Cells) -> list[LineupBar]:
    """The default winner's goodput at each dimension's low and high end, widest swing first."""
    base = default_point(dims)
    ends = [{**base, d.name: x} for d in dims for x in (d.low, d.high)]
    cells = fetch(ends)
    bars = []
    for k, d in enumerate(dims):
        lo, hi = cells[2 * k], cells[2 * k + 1]
        bars.append(LineupBar(d.name, d.low, d.high, lo[top].goodput_per_s, hi[top].goodput_per_s,
                              labels[winner(lo)], labels[winner(hi)]))
    return sorted(bars, key=lambda b: -abs(b.goodput_at_high - b.goodput_at_low))


def analyse_lineup(labels: Sequence[str], equal: str, dims: Sequence[Dimension],
                   points: Sequence[Point], fetch: Cells) -> LineupAnalysis:
    """The whole analysis over the sampled ``points`` (see the module docstring)."""
    base = default_point(dims)
    ends = [{**base, d.name: x} for d in dims for x in (d.low, d.high)]
    fetch([base, *points, *ends])  # one batch: a real evaluator runs it in parallel and caches
    at_default = fetch([base])[0]
    top = winner(at_default)
    cells = fetch(points)
    rows = point_rows(labels, [base], [at_default], -1) + point_rows(labels, points, cells)
    evens = [break_even(d, labels, dims, fetch, ITERATIONS[d.kind]) for d in dims]
    return LineupAnalysis(equal, tuple(labels), tuple(dims), labels[top],
                          at_default[top].goodput_per_s, at_default[top].capacity_per_s,
                          tuple(shares(labels, cells)), tuple(evens),
                          tuple(tornado(labels, dims, top, fetch)), tuple(rows))

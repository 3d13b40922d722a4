"""The real :data:`~disagg.experiments.robust.lineup_core.Cells` of a robust line-up: at each
assumption point, every cluster's experiment gets the point's values (performance fields on its
hardware; a price or power as its pools' per-chip override), the clusters are **lined up again**
(under ``--equal cost`` a price changes how many units the budget buys, under ``--equal power`` a
power does) and every (cluster, rate, repeat) run is made on the virtual engine.

Runs are cached per run experiment — cluster, units, performance values, rate, seed, everything
but the prices and powers, which no run reads — in the output folder's journal
``robust-lineup-evaluations.jsonl``, a line appended as each run finishes, so an interrupt keeps
what finished and ``--resume`` reuses it. Missing runs are Ray tasks through the parallel
machinery compare and plan use (``use_ray`` False: in this process), a wave of ``width`` at a time
so that a stop request is honoured between waves.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from disagg.actors.engines.parallel import map_calls
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.compare.data import target_attainment
from disagg.experiments.compare.lineup import budget, line_up, plan_lineup
from disagg.experiments.compare.runs import RunPlan
from disagg.experiments.robust.core import Point
from disagg.experiments.robust.dimensions import Dimension
from disagg.experiments.robust.evaluate import RobustStopped, with_assumptions
from disagg.experiments.robust.lineup_core import Cell
from disagg.experiments.run import assemble

JOURNAL = "robust-lineup-evaluations.jsonl"
Progress = Callable[[str, int, int], None]
Units = tuple[tuple[str, int], ...]  # (pool kind, units) in pool order


def assumed(exp: Experiment, point: Point, dims: Sequence[Dimension]) -> Experiment:
    """``exp`` with ``point``'s values: performance fields on the hardware, prices and powers as
    the per-chip overrides of every pool of that hardware."""
    exp = with_assumptions(exp, [(d.name, float(point[d.name])) for d in dims if d.kind == "perf"])
    update = {}
    for kind, pool in exp.pools.items():
        hw = pool.hardware.name
        fields = {k: point[n] for k, n in (("price_per_chip_hour_usd", f"{hw}.price_per_hour_usd"),
                                           ("power_per_chip_w", f"{hw}.power_w")) if n in point}
        if fields:
            update[kind] = pool.model_copy(update=fields)
    return exp.model_copy(update=update)


def run_key(exp: Experiment) -> str:
    """The cache key of one run: a hash of the experiment without the prices and powers."""
    pools = {k: p.model_copy(update={"price_per_chip_hour_usd": None, "power_per_chip_w": None})
             for k, p in exp.pools.items()}
    text = exp.model_copy(update=pools).model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_cell(exp: Experiment) -> tuple[float, float, float]:
    """One virtual run: goodput (req/s within SLO), SLO attainment and wall seconds. Module
    level: runs as a Ray task."""
    started = time.time()
    summary = assemble(exp, run_virtual(exp)).summary
    return (float(summary.get("request_goodput") or 0.0),
            float(summary.get("slo_attainment") or 0.0), time.time() - started)


def capacity_over(rates: Sequence[float], attainment: dict[float, float], target: float) -> float:
    """The highest rate whose attainment meets ``target`` with every lower rate meeting it too
    (0 when the lowest misses it), as compare's capacity reads its rate grid."""
    best = 0.0
    for r in sorted(rates):
        if attainment[r] < target:
            break
        best = r
    return best


class LineupCells:
    """Journal-backed cells of a line-up over assumption points (see the module docstring)."""

    def __init__(self, journal: Path, experiments: list[Experiment], sources: list[str],
                 equal: str, rates: list[float] | None, repeats: int, dims: Sequence[Dimension],
                 use_ray: bool, width: int, progress: Progress | None = None,
                 stop: StopFlag | None = None) -> None:
        self.journal, self.experiments, self.sources = journal, experiments, sources
        self.equal, self.rates, self.repeats, self.dims = equal, rates, repeats, list(dims)
        self.use_ray, self.width, self.progress, self.stop = use_ray, width, progress, stop
        self.known: dict[str, tuple[float, float]] = {}
        for line in journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []:
            try:
                row = json.loads(line)
                self.known[row["run"]] = (float(row["goodput_per_s"]), float(row["attainment"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn last line from an interrupt
        self.resumed, self.runs = len(self.known), 0

    def plans(self, point: Point) -> tuple[list[Units], list[RunPlan], list[float | None]]:
        """The line-up at ``point``: per cluster its units; the runs; each cluster's cost."""
        exps = [assumed(e, point, self.dims) for e in self.experiments]
        lined = line_up(exps, self.equal, self.sources)
        costs: list[float | None] = []
        for c in lined:
            try:
                costs.append(budget(c.experiment, "cost"))
            except ConfigError:
                costs.append(None)  # a hardware without a price: no $ figure
        return ([tuple(c.units.items()) for c in lined],
                plan_lineup(lined, self.rates, self.repeats, "virtual"), costs)

    def __call__(self, points: Sequence[Point]) -> list[list[Cell]]:
        """Every cluster's cell at each point, running what the journal lacks."""
        built = [self.plans(p) for p in points]
        todo: dict[str, tuple[RunPlan, Point]] = {}
        for (_, plans, _), p in zip(built, points, strict=True):
            for plan in plans:
                key = run_key(plan.experiment)
                if key not in self.known:
                    todo.setdefault(key, (plan, p))
        self._run(list(todo.items()))
        return [self._cells(units, plans, costs) for units, plans, costs in built]

    def _cells(self, units: list[Units], plans: list[RunPlan],
               costs: list[float | None]) -> list[Cell]:
        """Per cluster: capacity over the rates, goodput at the highest, units and cost."""
        by: dict[str, list[tuple[float, float, float]]] = {}
        for plan in plans:
            g, a = self.known[run_key(plan.experiment)]
            by.setdefault(plan.policy.label, []).append((plan.rate_per_s, g, a))
        target = target_attainment(plans[0].experiment.slo.percentile_form)
        out = []
        for label, u, cost in zip(by, units, costs, strict=True):
            rates = sorted({r for r, _, _ in by[label]})
            mean_att = {r: _mean([a for x, _, a in by[label] if x == r]) for r in rates}
            goodput = _mean([g for x, g, _ in by[label] if x == rates[-1]])
            out.append(Cell(goodput, capacity_over(rates, mean_att, target), u, cost))
        return out

    def _run(self, todo: list[tuple[str, tuple[RunPlan, Point]]]) -> None:
        total, finished = len(todo), [0]
        for start in range(0, total, self.width):
            if self.stop is not None and self.stop.requested:
                raise RobustStopped(f"{total - start} runs left")
            wave = todo[start:start + self.width]

            def done(i: int, result: tuple[float, float, float], wave: Any = wave) -> None:
                key, (plan, point) = wave[i]
                goodput, att, wall = result
                self.known[key] = (goodput, att)
                self.runs += 1
                finished[0] += 1
                row = {"run": key, "cluster": plan.policy.label, "rate_per_s": plan.rate_per_s,
                       "repeat": plan.repeat,
                       "units": {k: p.units for k, p in plan.experiment.pools.items()},
                       "point": dict(point), "goodput_per_s": goodput, "attainment": att,
                       "wall_s": wall}
                with self.journal.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                if self.progress is not None:
                    self.progress(f"{plan.policy.label} {plan.rate_label} repeat {plan.repeat}: "
                                  f"goodput {goodput:.3g} req/s, attainment {att:.0%} "
                                  f"({wall:.1f} s)", self.runs, self.runs + total - finished[0])

            map_calls(run_cell, [(plan.experiment,) for _, (plan, _) in wave],
                      use_ray=self.use_ray, on_done=done)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0

"""The plan's search: candidates in order of their objective's denominator (cheapest first), each
one's capacity by bisection on the virtual engine (fanned out as Ray tasks, a wave at a time),
candidates that a cheaper measured one already beats on capacity skipped, and every finished
evaluation appended to a journal so an interrupted plan resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from disagg.actors.engines.parallel import map_calls
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.checks import check_experiment
from disagg.experiments.compare.capacity import attainment, bisect_capacity
from disagg.experiments.plan.bounds import WorkloadShape, capacity_bound_per_s
from disagg.experiments.plan.candidates import (
    ATTAINMENT_KEY,
    Candidate,
    candidate_experiment,
    footprint,
    objective_denominator,
    objective_value,
    within,
)
from disagg.experiments.plan.space import SearchSpace

EVALUATED, PRUNED, OVER, INFEASIBLE = "evaluated", "pruned_dominated", "over_constraint", "infeasible"


@dataclass(frozen=True)
class Evaluation:
    """One candidate's outcome: a row of plan.parquet."""

    candidate: Candidate
    status: str  # evaluated | pruned_dominated | over_constraint | infeasible
    reason: str
    usd_per_hour: float | None
    power_kw: float | None
    racks: float | None
    denominator: float | None  # the objective's denominator (USD/h, kW or racks)
    bound_per_s: float | None  # optimistic capacity bound x (1 + slack)
    capacity_per_s: float | None  # highest rate meeting the target (0: not even the lowest)
    objective: float | None  # capacity / denominator
    runs: int  # virtual-engine runs spent on it
    wall_s: float

    def row(self) -> dict[str, Any]:
        """Flat dict for the journal and plan.parquet."""
        out = asdict(self.candidate)
        out.update({k: v for k, v in asdict(self).items() if k != "candidate"})
        out.update(key=self.candidate.key, label=self.candidate.label)
        return out

    @staticmethod
    def from_row(row: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`row` (reading the journal back)."""
        fields = set(Candidate.__dataclass_fields__)
        cand = Candidate(**{k: row[k] for k in fields})
        rest = {k: row[k] for k in Evaluation.__dataclass_fields__ if k != "candidate"}
        return Evaluation(cand, **rest)


@dataclass(frozen=True)
class Prepared:
    """A candidate ready to run: its experiment, footprint, denominator and bound."""

    candidate: Candidate
    experiment: Experiment
    evaluation: Evaluation  # the row so far (status decided if it will not run)


def prepare(base: Experiment, candidates: list[Candidate], space: SearchSpace,
            shape: WorkloadShape) -> list[Prepared]:
    """Experiment, footprint, constraint check and bound per candidate (no runs yet)."""
    out = []
    metric = space.objective.maximize
    for c in candidates:
        exp = candidate_experiment(base, c, space)
        fp = footprint(exp, space)
        row = Evaluation(c, "", "", fp.usd_per_hour, fp.power_kw, fp.racks, None, None, None, None,
                         0, 0.0)
        try:
            check_experiment(exp)
        except ConfigError as e:
            out.append(Prepared(c, exp, replace(row, status=INFEASIBLE, reason=str(e))))
            continue
        denom = objective_denominator(fp, metric)
        broken = within(fp, space)
        bound = capacity_bound_per_s(exp, shape, space.search.prune_slack)
        row = replace(row, denominator=denom, bound_per_s=bound)
        if broken is not None:
            row = replace(row, status=OVER, reason=broken)
        out.append(Prepared(c, exp, row))
    return out


def evaluate(exp: Experiment, bound_per_s: float, tol_fraction: float, lo_fraction: float,
             repeats: int, target: float, key: str = "slo_attainment") -> tuple[float, int, float]:
    """Capacity (req/s; 0 below the lowest rate searched) by bisection in
    [bound x lo_fraction, bound], the virtual runs it took, and its wall seconds. Module level so
    that it runs as a Ray task."""
    started = time.time()
    runs = 0

    def measure(e: Experiment, rate: float, k: int) -> float:
        nonlocal runs
        runs += k
        return attainment(e, rate, k, key=key)

    cap = bisect_capacity(exp, bound_per_s * lo_fraction, bound_per_s,
                          tol_fraction * bound_per_s, repeats, target, measure)
    return (cap or 0.0), runs, time.time() - started


def dominated_by(x: Evaluation, done: list[Evaluation]) -> Evaluation | None:
    """A measured candidate that is no dearer than ``x`` and whose capacity reaches ``x``'s
    optimistic bound — so ``x`` cannot lie on the frontier — or None."""
    assert x.denominator is not None and x.bound_per_s is not None
    for y in done:
        if (y.status == EVALUATED and y.denominator is not None
                and y.denominator <= x.denominator and (y.capacity_per_s or 0.0) >= x.bound_per_s):
            return y
    return None


Progress = Callable[[Evaluation, int, int], None]


def search(prepared: list[Prepared], space: SearchSpace, journal: Path, resumed: list[Evaluation],
           use_ray: bool, width: int, progress: Progress | None = None,
           stop: StopFlag | None = None) -> list[Evaluation]:
    """Evaluate the runnable candidates cheapest first, ``width`` at a time; rows already in the
    journal (``resumed``) are not run again. Once ``stop`` is requested no new wave starts.
    Returns every finished candidate's evaluation (all of them unless stopped)."""
    have = {e.candidate.key: e for e in resumed}
    rows = [have.get(p.candidate.key, p.evaluation) for p in prepared]
    done = [r for r in rows if r.status]
    total = len(rows)
    todo = sorted((p for p, r in zip(prepared, rows, strict=True) if not r.status),
                  key=lambda p: (p.evaluation.denominator, p.candidate.key))
    for r in done:
        if r.candidate.key not in have:
            _append(journal, r)
    while todo and not (stop is not None and stop.requested):
        wave, todo = _next_wave(todo, done, journal, width, progress, total)
        if not wave:
            continue

        def finished(i: int, result: tuple[float, int, float], wave: list[Prepared] = wave) -> None:
            row = _evaluated(wave[i].evaluation, space, result)
            done.append(row)
            _append(journal, row)
            if progress is not None:
                progress(row, len(done), total)

        map_calls(evaluate, _wave_args(wave, space), use_ray=use_ray, on_done=finished)
    by_key = {r.candidate.key: r for r in done}
    return [by_key[p.candidate.key] for p in prepared if p.candidate.key in by_key]


def _wave_args(wave: list[Prepared], space: SearchSpace) -> list[tuple[Any, ...]]:
    """The arguments of ``evaluate`` for each candidate of a wave: its experiment, its capacity
    bound (req/s), the search's tolerances and repeats, and the objective's attainment target and
    key."""
    s = space.search
    return [(p.experiment, p.evaluation.bound_per_s, s.tol_fraction, s.lo_fraction, s.repeats,
             space.objective.target_attainment,
             ATTAINMENT_KEY.get(space.objective.maximize, "slo_attainment")) for p in wave]


def _evaluated(row: Evaluation, space: SearchSpace,
               result: tuple[float, int, float]) -> Evaluation:
    """A candidate's row once evaluated: ``result`` is (capacity req/s, runs, wall s); a capacity
    at the bound is flagged (the bound, not the candidate, limited it)."""
    cap, runs, wall = result
    reason = "capacity reached the bound; raise search.prune_slack" if (
        row.bound_per_s is not None and cap >= row.bound_per_s) else ""
    return replace(row, status=EVALUATED, reason=reason, capacity_per_s=cap,
                   objective=objective_value(space.objective.maximize, cap, row.denominator),
                   runs=runs, wall_s=wall)


def _next_wave(todo: list[Prepared], done: list[Evaluation], journal: Path, width: int,
               progress: Progress | None, total: int) -> tuple[list[Prepared], list[Prepared]]:
    """Take up to ``width`` candidates to run, pruning (and journaling) dominated ones first."""
    wave: list[Prepared] = []
    rest = list(todo)
    while rest and len(wave) < width:
        p = rest.pop(0)
        winner = dominated_by(p.evaluation, done)
        if winner is None:
            wave.append(p)
            continue
        row = replace(p.evaluation, status=PRUNED,
                      reason=f"{winner.candidate.label} costs no more and already reaches "
                             f"{winner.capacity_per_s:.3g} req/s >= this bound")
        done.append(row)
        _append(journal, row)
        if progress is not None:
            progress(row, len(done), total)
    return wave, rest


def _append(journal: Path, row: Evaluation) -> None:
    with journal.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row.row()) + "\n")
        f.flush()


def read_journal(journal: Path) -> list[Evaluation]:
    """Evaluations already finished (a torn last line from an interrupt is ignored)."""
    if not journal.exists():
        return []
    out = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            out.append(Evaluation.from_row(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def frontier(rows: list[Evaluation]) -> list[Evaluation]:
    """The Pareto frontier of denominator (lower is better) against capacity (higher is better)
    among evaluated candidates with some capacity (one that meets the SLO target at no rate is on
    no frontier); ties in both are broken by key so the frontier is a set."""
    pts = [r for r in rows if r.status == EVALUATED and r.denominator is not None
           and (r.capacity_per_s or 0.0) > 0]
    out = []
    for x in pts:
        cx = x.capacity_per_s or 0.0
        beaten = any(
            y is not x and y.denominator <= x.denominator and (y.capacity_per_s or 0.0) >= cx  # type: ignore[operator]
            and (y.denominator < x.denominator or (y.capacity_per_s or 0.0) > cx  # type: ignore[operator]
                 or y.candidate.key < x.candidate.key)
            for y in pts)
        if not beaten:
            out.append(x)
    return sorted(out, key=lambda r: (r.denominator, r.candidate.key))

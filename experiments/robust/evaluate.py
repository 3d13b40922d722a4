"""Capacities at assumption points on the virtual engine, cached per (candidate key, performance
projection of the point) in the plan folder's ``robust/evaluations.jsonl`` journal: a line per
finished evaluation, appended as it finishes, read back on the next run (``--resume`` or a new
``[robust]`` sample), so an interrupt keeps everything done. Missing ones run as Ray tasks through
the plan's parallel machinery, ``width`` at a time so a stop request is honoured between waves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from disagg.actors.engines.parallel import map_calls
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.experiments.plan.bounds import WorkloadShape, capacity_bound_per_s
from disagg.experiments.plan.candidates import ATTAINMENT_KEY
from disagg.experiments.plan.search import evaluate
from disagg.experiments.plan.space import SearchSpace
from disagg.experiments.robust.core import Contender, Point, projection
from disagg.experiments.robust.dimensions import Dimension

Key = tuple[str, tuple[tuple[str, float], ...]]
Progress = Callable[[str, int, int], None]


class RobustStopped(Exception):
    """A stop request (Ctrl-C) ended the robust evaluation; the journal keeps what finished."""


def with_assumptions(exp: Experiment, values: Sequence[tuple[str, float]]) -> Experiment:
    """``exp`` with performance assumptions set: ``hw.field`` on every pool of that hardware,
    ``any.speculative_alpha`` as the acceptance rate of every speculative pool."""
    update = {}
    for kind, pool in exp.pools.items():
        fields = {n.split(".", 1)[1]: v for n, v in values if n.split(".")[0] == pool.hardware.name}
        new = pool
        if fields:
            new = new.model_copy(update={"hardware": pool.hardware.model_copy(update=fields)})
        alpha = dict(values).get("any.speculative_alpha")
        spec = getattr(pool, "speculative", None)
        if alpha is not None and spec is not None:
            new = new.model_copy(update={"speculative": spec.model_copy(
                update={"acceptance_rate": alpha})})
        if new is not pool:
            update[kind] = new
    return exp.model_copy(update=update)


def evaluate_at(exp: Experiment, values: tuple[tuple[str, float], ...], shape: WorkloadShape,
                slack: float, tol_fraction: float, lo_fraction: float, repeats: int,
                target: float, key: str) -> tuple[float, int, float]:
    """One candidate's capacity (req/s), runs and wall seconds with ``values`` assumed (the
    bound recomputed for them). Module level: runs as a Ray task."""
    e = with_assumptions(exp, values)
    return evaluate(e, capacity_bound_per_s(e, shape, slack), tol_fraction, lo_fraction, repeats,
                    target, key)


class CachedCapacities:
    """The real :data:`~disagg.experiments.robust.core.Capacities`: journal-backed cache in
    front of :func:`evaluate_at`, pruning per point as the plan does (``bound_fn``: the
    optimistic bound of an experiment with performance values, default the plan's)."""

    def __init__(self, journal: Path, experiments: dict[str, Experiment],
                 dims: Sequence[Dimension], shape: WorkloadShape, space: SearchSpace,
                 use_ray: bool, width: int, progress: Progress | None = None,
                 stop: StopFlag | None = None, labels: dict[str, str] | None = None,
                 bound_fn: Callable[[Experiment, tuple[tuple[str, float], ...]], float] | None
                 = None) -> None:
        self.journal, self.experiments, self.dims = journal, experiments, list(dims)
        self.shape, self.space, self.use_ray, self.width = shape, space, use_ray, width
        self.progress, self.stop, self.labels = progress, stop, labels or {}
        self.known: dict[Key, float] = {}
        self.bounds: dict[Key, float] = {}
        self.keep: set[str] = set()
        self.bound_fn = bound_fn or (lambda exp, values: capacity_bound_per_s(
            with_assumptions(exp, values), shape, space.search.prune_slack))
        self.resumed = self.runs = 0
        for line in journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []:
            try:
                row = json.loads(line)
                k = (row["key"], tuple((n, float(v)) for n, v in row["point"]))
                self.known[k] = float(row["capacity_per_s"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn last line from an interrupt
        self.resumed = len(self.known)

    def __call__(self, requests: Sequence[tuple[Contender, Point]]) -> list[float]:
        """Capacities of the requested (contender, point) pairs. Per point, the contenders asked
        for are run cheapest first and one that a no-dearer contender already beats at its
        optimistic bound (as the plan prunes) is not run: it gets 0, being neither best nor on
        the frontier among them (``keep`` keys are always run)."""
        keys = [(c.key, projection(c, p, self.dims)) for c, p in requests]
        groups: dict[tuple[tuple[str, float], ...], list[tuple[Contender, Point]]] = {}
        for c, p in requests:
            groups.setdefault(tuple(sorted(p.items())), []).append((c, p))
        pruned: set[tuple[str, tuple[tuple[str, float], ...]]] = set()
        for point_key, group in groups.items():
            for name in self._prune_and_run(group):
                pruned.add((name, point_key))
        return [0.0 if (c.key, tuple(sorted(p.items()))) in pruned else self.known[k]
                for (c, p), k in zip(requests, keys, strict=True)]

    def _prune_and_run(self, group: list[tuple[Contender, Point]]) -> set[str]:
        """Run what one point needs, cheapest first, a wave at a time; the pruned keys."""
        metric = self.space.objective.maximize
        todo = sorted(dict((c.key, (c, p)) for c, p in group).values(),
                      key=lambda cp: (cp[0].denominator(metric, cp[1]) or 0.0, cp[0].key))
        pruned: set[str] = set()
        while True:
            wave: list[Key] = []
            left = [(c, p) for c, p in todo
                    if self._key(c, p) not in self.known and c.key not in pruned]
            for c, p in left:
                if len(wave) >= self.width:
                    break
                if c.key not in self.keep and self._dominated(c, p, todo):
                    pruned.add(c.key)
                else:
                    wave.append(self._key(c, p))
            if not wave:
                return pruned
            if self.stop is not None and self.stop.requested:
                raise RobustStopped(f"{len(left)} evaluations left")
            self._run(wave, len(left) - len(pruned))

    def _key(self, c: Contender, p: Point) -> Key:
        return (c.key, projection(c, p, self.dims))

    def _dominated(self, c: Contender, p: Point, group: list[tuple[Contender, Point]]) -> bool:
        """A measured contender no dearer than ``c`` at ``p`` reaches ``c``'s bound there."""
        metric = self.space.objective.maximize
        den = c.denominator(metric, p) or 0.0
        bound = self.bound(c, p)
        return any(y.key != c.key and (y.denominator(metric, p) or 0.0) <= den
                   and self.known.get(self._key(y, p), -1.0) >= bound for y, _ in group)

    def bound(self, c: Contender, p: Point) -> float:
        """``c``'s optimistic capacity bound (req/s) with ``p``'s performance values."""
        k = self._key(c, p)
        if k not in self.bounds:
            self.bounds[k] = self.bound_fn(self.experiments[c.key], k[1])
        return self.bounds[k]

    def seed(self, key: Key, capacity_per_s: float) -> None:
        """Record a capacity measured elsewhere (the plan's own, at the default point)."""
        self.known.setdefault(key, capacity_per_s)

    def _run(self, wave: list[Key], pending: int) -> None:
        s, o = self.space.search, self.space.objective
        args = [(self.experiments[key], values, self.shape, s.prune_slack, s.tol_fraction,
                 s.lo_fraction, s.repeats, o.target_attainment,
                 ATTAINMENT_KEY.get(o.maximize, "slo_attainment")) for key, values in wave]

        left = [pending]

        def done(i: int, result: tuple[float, int, float]) -> None:
            cap, runs, wall = result
            left[0] -= 1
            key, values = wave[i]
            self.known[wave[i]] = cap
            self.runs += 1
            row: dict[str, Any] = {"key": key, "point": [list(v) for v in values],
                                   "capacity_per_s": cap, "runs": runs, "wall_s": wall}
            with self.journal.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if self.progress is not None:
                shown = ", ".join(f"{n}={v:.3g}" for n, v in values) or "default"
                label = self.labels.get(key, key)
                self.progress(f"{label} at {shown}: {cap:.3g} req/s ({runs} runs, {wall:.1f} s)",
                              self.runs, self.runs + max(left[0], 0))

        map_calls(evaluate_at, args, use_ray=self.use_ray, on_done=done)

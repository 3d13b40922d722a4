"""Capacity by bisection on the virtual engine: the highest request rate at which mean SLO
attainment (over seeds ``seed .. seed + repeats - 1``) stays at or above a target.

It cross-checks the capacity a comparison reads off its rate grid (``comparison.capacity``); both
assume attainment falls as the rate rises, and bisection finds one crossing if it does not.
"""

from __future__ import annotations

from collections.abc import Callable

from disagg.actors.engines.stop import StopFlag, StoppedBeforeStart
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import Experiment
from disagg.experiments.compare.data import TARGET_ATTAINMENT
from disagg.experiments.compare.runs import PolicyChoice, variant
from disagg.experiments.run import assemble


class SearchStopped(Exception):
    """The search was stopped (Ctrl-C) in the middle of a measurement."""


def attainment(exp: Experiment, rate_per_s: float, repeats: int = 1,
               stop: StopFlag | None = None, key: str = "slo_attainment") -> float:
    """Mean SLO attainment (summary.json ``key``: ``task_slo_attainment`` for tasks) of ``exp``
    at ``rate_per_s`` over ``repeats`` seeds, virtual engine; :class:`SearchStopped` if
    ``stop`` is requested meanwhile."""
    router = PolicyChoice(exp.policies.router.name, exp.policies.router.name,
                          dict(exp.policies.router.params))
    values = []
    for k in range(repeats):
        run = variant(exp, router, rate_per_s, exp.experiment.seed + k, "virtual")
        try:
            raw = run_virtual(run, stop=stop)
        except StoppedBeforeStart as e:
            raise SearchStopped(e.reason) from None
        if stop is not None and stop.requested:
            raise SearchStopped(stop.reason)
        values.append(assemble(run, raw).summary[key] or 0.0)
    return sum(values) / len(values)


def bisect_capacity(exp: Experiment, lo_per_s: float, hi_per_s: float, tol_per_s: float,
                    repeats: int = 1, target: float = TARGET_ATTAINMENT,
                    measure: Callable[[Experiment, float, int], float] = attainment) -> float | None:
    """Highest rate (req/s, within ``tol_per_s``) with attainment >= ``target``, searched in
    [lo, hi]: None if ``lo`` already misses the target, ``hi`` if even ``hi`` meets it."""
    if not 0 < lo_per_s < hi_per_s or tol_per_s <= 0:
        raise ValueError(f"need 0 < lo < hi and tol > 0, got lo={lo_per_s}, hi={hi_per_s}, "
                         f"tol={tol_per_s}")
    if measure(exp, lo_per_s, repeats) < target:
        return None
    if measure(exp, hi_per_s, repeats) >= target:
        return hi_per_s
    lo, hi = lo_per_s, hi_per_s
    while hi - lo > tol_per_s:
        mid = (lo + hi) / 2
        if measure(exp, mid, repeats) >= target:
            lo = mid
        else:
            hi = mid
    return lo

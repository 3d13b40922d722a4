"""Throughput under latency limits for the accuracy suite (MLPerf's Server / Interactive metric).

The highest Poisson arrival rate at which p99 TTFT and p99 TPOT, over every request submitted
after the warm-up (the first ``WARMUP_FRACTION`` of the run), stay within the limits, found by
bisection (:func:`experiments.compare.capacity.bisect_capacity`) on the virtual engine; the
metric is that rate times the mean output tokens of those requests (output tokens/s). A request
that did not complete counts as missing both limits. Seconds, tokens, requests per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disagg.cluster.config import Experiment
from disagg.experiments.compare.capacity import bisect_capacity
from disagg.experiments.compare.runs import PolicyChoice, variant
from disagg.experiments.run import run_experiment

WARMUP_FRACTION = 0.2  # requests arriving in the first 20 % of the run are the warm-up
PERCENTILE = 99.0  # MLPerf's LLM latency constraints are on the 99th percentile
NEVER_S = 1e9  # the latency of a request that did not complete (misses any limit)


@dataclass(frozen=True)
class LatencyLimits:
    """p99 limits a run must meet (seconds)."""

    ttft_s: float
    tpot_s: float


@dataclass(frozen=True)
class RateResult:
    """One run at one arrival rate: whether it met the limits and its output tokens/s."""

    met: bool
    output_tok_s: float


def measure_rate(exp: Experiment, rate_per_s: float, limits: LatencyLimits) -> RateResult:
    """Run ``exp`` at ``rate_per_s`` (virtual engine) and check its p99 latencies."""
    router = PolicyChoice(exp.policies.router.name, exp.policies.router.name,
                          dict(exp.policies.router.params))
    run = variant(exp, router, rate_per_s, exp.experiment.seed, "virtual")
    rows = run_experiment(run).tables["requests"].to_pylist()
    warm_s = WARMUP_FRACTION * exp.experiment.duration_s
    steady = [r for r in rows if r["arrival_s"] >= warm_s]
    if not steady:
        raise RuntimeError(f"no request arrived after the warm-up at {rate_per_s} req/s")
    done = [r["status"] == "completed" for r in steady]
    ttft = np.array([r["ttft_s"] if ok else NEVER_S for r, ok in zip(steady, done, strict=True)])
    tpot = np.array([r["tpot_s"] if ok else NEVER_S for r, ok in zip(steady, done, strict=True)])
    met = bool(np.percentile(ttft, PERCENTILE) <= limits.ttft_s
               and np.percentile(tpot, PERCENTILE) <= limits.tpot_s)
    mean_out = float(np.mean([r["output_tokens"] for r in steady]))
    return RateResult(met, rate_per_s * mean_out)


def capacity_tok_s(exp: Experiment, limits: LatencyLimits, lo_per_s: float, hi_per_s: float,
                   tol_fraction: float = 0.02) -> float:
    """Output tokens/s at the highest rate in [lo, hi] (within ``tol_fraction`` of hi) whose
    p99 TTFT and TPOT meet ``limits``; 0 if even ``lo`` misses them."""
    def met(e: Experiment, rate: float, _repeats: int) -> float:
        return 1.0 if measure_rate(e, rate, limits).met else 0.0

    rate = bisect_capacity(exp, lo_per_s, hi_per_s, tol_fraction * hi_per_s, target=1.0,
                           measure=met)
    return 0.0 if rate is None else measure_rate(exp, rate, limits).output_tok_s

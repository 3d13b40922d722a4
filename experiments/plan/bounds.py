"""An optimistic capacity bound per candidate, used to prune the search and to bracket bisection.

A candidate cannot serve more requests per second than its busier pool allows:

* prefill: ``units / min_k (prefill_time(k prompts of the mean length) / k)`` for k = 1..256 —
  perfectly packed batches of mean-length prompts (the prefill time is convex in the prompt length
  through attention, so mean-length prompts are the optimistic case by Jensen's inequality);
* decode: ``units x max_b (b / step_time(b)) / mean output tokens``, b up to the streams whose KV
  (mean prompt + mean output, reserved on admission) fits one unit, at most 1024.

A colocated pool does both phases on the same units, so its throughput is at most the smaller of
the two bounds computed for that one pool (each phase alone can go no faster).

The bound ignores queueing, SLOs and transfers, so it is optimistic for steady state. A finite
run can still meet the attainment target a little above steady-state capacity (the queue needs
time to build), so the planner multiplies the bound by ``1 + prune_slack`` (default 0.5) before
it prunes or brackets with it; docs/plan.md states this, and the test compares the pruned search
with brute force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disagg.cluster.config import Experiment
from disagg.cluster.hardware.perf import decode_step_times, fit_check, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.workload.agentic import context_limit, plan_tasks
from disagg.cluster.workload.kinds import AgenticWorkload, ClosedLoopWorkload
from disagg.cluster.workload.plan import SloTargets, plan_requests

MAX_PREFILL_BATCH = 256
MAX_DECODE_BATCH = 1024


@dataclass(frozen=True)
class WorkloadShape:
    """Mean prompt and output tokens of the workload (from its planned request stream)."""

    mean_prompt_tokens: float
    mean_output_tokens: float
    calls_per_task: float = 1.0  # agentic: the rate searched is tasks/s, each this many calls
    mean_new_tokens: float | None = None  # agentic: prompt tokens not in the previous context


def workload_shape(exp: Experiment) -> WorkloadShape:
    """Means of the experiment's own request stream (seeded; closed loops are refused earlier)."""
    if isinstance(exp.workload, ClosedLoopWorkload):
        raise TypeError("a closed-loop workload has no arrival rate to plan for")
    if isinstance(exp.workload, AgenticWorkload):
        return _agentic_shape(exp, exp.workload)
    rng = np.random.default_rng(exp.experiment.seed)
    reqs = plan_requests(exp.workload, SloTargets(exp.slo.ttft_s, exp.slo.tpot_s),
                         exp.experiment.duration_s, rng)
    if not reqs:
        return WorkloadShape(1.0, 1.0)
    return WorkloadShape(float(np.mean([r.prompt_tokens for r in reqs])),
                         float(np.mean([r.output_tokens for r in reqs])))


def _agentic_shape(exp: Experiment, w: AgenticWorkload) -> WorkloadShape:
    """Means over the planned tasks' calls; a call's new tokens are those beyond the previous
    call's prompt + output (all of the first call's), the optimistic prefill work when the rest
    is cached."""
    limit = context_limit(w, exp.model.max_context_tokens)
    tasks = plan_tasks(w, exp.experiment.duration_s, limit,
                       np.random.default_rng(exp.experiment.seed))
    calls = [c for t in tasks for c in t.calls]
    if not calls:
        return WorkloadShape(1.0, 1.0)
    new = [max(1, c.prompt_tokens - (p.prompt_tokens + p.output_tokens if k else 0))
           for t in tasks for k, (p, c) in enumerate(zip((t.calls[0], *t.calls), t.calls))]
    return WorkloadShape(float(np.mean([c.prompt_tokens for c in calls])),
                         float(np.mean([c.output_tokens for c in calls])),
                         len(calls) / len(tasks), float(np.mean(new)))


def prefill_bound_per_s(exp: Experiment, shape: WorkloadShape) -> float:
    """Requests per second the prefill pool could finish with perfectly packed batches (of the
    new tokens only, for agent calls whose context is cached)."""
    p = exp.first_pool  # the prefill pool, or the colocated one
    prompt = max(1, round(shape.mean_new_tokens or shape.mean_prompt_tokens))
    per_request = min(prefill_time([prompt] * k, exp.model, p.hardware, p.chips_per_unit).seconds / k
                      for k in (1, 2, 4, 8, 16, 32, 64, 128, MAX_PREFILL_BATCH))
    return p.units / per_request


def decode_bound_per_s(exp: Experiment, shape: WorkloadShape) -> float:
    """Requests per second the decode pool could finish at its best batch size."""
    d = exp.last_pool  # the decode pool, or the colocated one
    need = float(kv_bytes(round(shape.mean_prompt_tokens + shape.mean_output_tokens), exp.model))
    room = fit_check(exp.model, d.hardware, d.chips_per_unit).kv_capacity_bytes
    streams = int(max(1, min(MAX_DECODE_BATCH, room // need if need > 0 else MAX_DECODE_BATCH)))
    b = np.arange(1, streams + 1, dtype=np.float64)
    ctx = b * (shape.mean_prompt_tokens + shape.mean_output_tokens / 2)
    tokens_per_s = float(np.max(b / decode_step_times(b, ctx, exp.model, d.hardware,
                                                      d.chips_per_unit)))
    return d.units * tokens_per_s / max(1.0, shape.mean_output_tokens)


def capacity_bound_per_s(exp: Experiment, shape: WorkloadShape, slack: float) -> float:
    """The optimistic bound times ``1 + slack`` (req/s; tasks/s for agentic workloads)."""
    calls = min(prefill_bound_per_s(exp, shape), decode_bound_per_s(exp, shape))
    return calls / shape.calls_per_task * (1 + slack)

"""Agent tasks planned ahead: each task's chain of calls (prompt and output tokens, prefix-block
hash ids, the delay after the previous call's end), from the synthetic generator or a recorded
session trace. Pure; :class:`~disagg.cluster.workload.sessions.AgentSessions` runs the chains.

A call's prompt is the task's context so far (the previous call's prompt and output) plus the
tokens the call adds; its first ``prompt // PREFIX_BLOCK_TOKENS`` blocks keep the ids of the
previous prompt's blocks (the multi-turn chat workload's rule, ``plan.extend_conversation``),
so the cluster sees the reuse. Each task draws from its own generator (seeded from the run's
stream and its id), so a task's chain does not depend on the order other tasks' calls end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disagg.cluster.errors import ConfigError
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS
from disagg.cluster.workload.kinds import AgenticWorkload
from disagg.cluster.workload.plan import Conversation, extend_conversation
from disagg.cluster.workload.sessions_trace import Session
from disagg.cluster.workload.synthetic import arrival_times

TASK_BLOCK_SPACE = 1 << 32
"""Block ids of task t are drawn from [t x TASK_BLOCK_SPACE, (t + 1) x TASK_BLOCK_SPACE): no
two tasks share a block (their prompts differ), whatever order they run in."""


@dataclass(frozen=True)
class CallPlan:
    """One call of a task: prompt and output tokens, prefix-block hash ids and the delay (emu s)
    after the previous call's end (0 for the first call)."""

    prompt_tokens: int
    output_tokens: int
    delay_s: float
    hashes: tuple[int, ...]


@dataclass(frozen=True)
class TaskPlan:
    """A task: id, arrival (emu s, its first call's send time) and its calls; ``end`` is the
    status it ends with once every call completed (``completed``, or ``context_limit`` when
    its next call would not fit the context limit)."""

    task_id: int
    arrival_s: float
    calls: tuple[CallPlan, ...]
    end: str


def context_limit(w: AgenticWorkload, model_limit: int | None) -> int:
    """Tokens a call's prompt + output may hold: the workload's limit, else the model's."""
    return w.max_context_tokens or model_limit or 131_072


def plan_tasks(w: AgenticWorkload, duration_s: float, limit: int,
               rng: np.random.Generator) -> list[TaskPlan]:
    """The run's tasks in arrival order (ids 0..n-1), arrivals in [0, duration_s)."""
    if w.trace is not None:
        return _replayed(w, w.trace.load(), duration_s, limit)
    assert w.rate_per_s is not None  # the config requires rate_per_s without a trace
    times = arrival_times(w.arrivals, rng, w.rate_per_s, duration_s, w.max_tasks)
    base = int(rng.integers(0, 2**62))
    return [_synthetic(w, t, float(at), limit, np.random.default_rng([base, t]))
            for t, at in enumerate(times)]


def _synthetic(w: AgenticWorkload, task_id: int, arrival_s: float, limit: int,
               rng: np.random.Generator) -> TaskPlan:
    n = int(w.calls_per_task.sample(rng, 1)[0])
    outputs = np.minimum(w.output_tokens.sample(rng, n), limit // 2)
    first = int(min(w.first_prompt_tokens.sample(rng, 1)[0], limit - int(outputs[0])))
    new = w.new_tokens.sample(rng, n)
    delays = w.delay_s.sample(rng, n)
    calls: list[CallPlan] = []
    conv, next_id = Conversation(0, ()), task_id * TASK_BLOCK_SPACE
    first_blocks: tuple[int, ...] = ()
    for k in range(n):
        add, out = (first if k == 0 else int(new[k])), int(outputs[k])
        if conv.context_tokens + add + out > limit:
            if w.on_context_limit == "end_task":
                return TaskPlan(task_id, arrival_s, tuple(calls), "context_limit")
            conv = Conversation(first, first_blocks)  # keep the first prompt, drop the rest
            if first + add + out > limit:
                return TaskPlan(task_id, arrival_s, tuple(calls), "context_limit")
        conv, ids, next_id = extend_conversation(conv, add, out, next_id)
        if k == 0:
            first_blocks = ids[: first // PREFIX_BLOCK_TOKENS]
        calls.append(CallPlan(conv.context_tokens - out, out,
                              0.0 if k == 0 else float(delays[k]), ids))
    return TaskPlan(task_id, arrival_s, tuple(calls), "completed")


def _replayed(w: AgenticWorkload, sessions: tuple[Session, ...], duration_s: float,
              limit: int) -> list[TaskPlan]:
    """Recorded sessions as tasks: starts from the first session's, divided by the speed-up,
    before ``duration_s``, at most ``max_tasks``; a call over the limit ends its task."""
    origin = sessions[0].start_s
    out: list[TaskPlan] = []
    for s in sessions:
        at = (s.start_s - origin) / w.trace_speedup
        if at >= duration_s or (w.max_tasks is not None and len(out) >= w.max_tasks):
            break
        calls: list[CallPlan] = []
        end = "completed"
        for c in s.calls:
            if c.prompt_tokens + c.output_tokens > limit:
                end = "context_limit"
                break
            calls.append(CallPlan(c.prompt_tokens, c.output_tokens, c.delay_s / w.trace_speedup,
                                  c.hashes))
        if not calls:
            raise ConfigError(f"field 'workload.trace': session {s.session_id!r}'s first call "
                              f"({s.calls[0].prompt_tokens} + {s.calls[0].output_tokens} "
                              f"tokens) exceeds the context limit {limit}")
        out.append(TaskPlan(len(out), at, tuple(calls), end))
    return out

"""Agent sessions run as a closed loop: each task's next call is sent only when its previous
call ended, plus the planned delay. Pure; the closed-loop load generator drives it
(``actors/components/closed_loop.py``), on both engines, as it drives chat users.

Every task ends in exactly one status (``TASK_STATUSES``):

- ``completed``: every planned call completed;
- ``context_limit``: every call sent completed and the next would exceed the context limit;
- ``failed``: a call ended other than completed (rejected, failed, cancelled); no call follows;
- ``unfinished``: the run ended first (the next call would be sent at or after ``duration_s``,
  or a call never ended).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from disagg.cluster.messages import Request
from disagg.cluster.workload.agentic import TaskPlan
from disagg.cluster.workload.plan import SloTargets

TASK_STATUSES = ("completed", "context_limit", "failed", "unfinished")


@dataclass
class TaskProgress:
    """A task's calls sent so far (request ids), its end time (emu s) and status once ended."""

    plan: TaskPlan
    request_ids: list[int] = field(default_factory=list)
    end_s: float | None = None
    status: str | None = None


class AgentSessions:
    """The tasks of an agentic workload; ``start()`` gives every task's first call, and
    ``after(id, end_s, status)`` the next call of the task whose call ``id`` ended, or None."""

    def __init__(self, tasks: list[TaskPlan], slo: SloTargets, slo_class: str,
                 duration_s: float) -> None:
        self.tasks = [TaskProgress(t) for t in tasks]
        self.slo = slo
        self.slo_class = slo_class
        self.duration_s = duration_s
        self.sent = 0
        self.active_users = 0  # tasks not yet ended (the generator runs while any is)
        self._task_of: dict[int, TaskProgress] = {}

    def start(self) -> list[Request]:
        """Each task's first call, in arrival order."""
        self.active_users = len(self.tasks)
        return [self._send(t, t.plan.arrival_s) for t in self.tasks]

    def after(self, request_id: int, end_s: float, status: str = "completed") -> Request | None:
        """The next call of the task whose call ``request_id`` ended at ``end_s`` with
        ``status``; None when the task ended (its status is then set)."""
        task = self._task_of.pop(request_id, None)
        if task is None:
            return None
        done = len(task.request_ids)
        t = end_s + (task.plan.calls[done].delay_s if done < len(task.plan.calls) else 0.0)
        if status != "completed":
            self._end(task, "failed", end_s)
        elif done == len(task.plan.calls):
            self._end(task, task.plan.end, end_s)
        elif t >= self.duration_s:
            self._end(task, "unfinished", None)
        else:
            return self._send(task, t)
        return None

    def _end(self, task: TaskProgress, status: str, end_s: float | None) -> None:
        task.status, task.end_s = status, end_s
        self.active_users -= 1

    def _send(self, task: TaskProgress, t: float) -> Request:
        call = task.plan.calls[len(task.request_ids)]
        request = Request(self.sent, t, call.prompt_tokens, call.output_tokens, self.slo_class,
                          self.slo.ttft_s, self.slo.tpot_s, call.hashes)
        self.sent += 1
        task.request_ids.append(request.request_id)
        self._task_of[request.request_id] = task
        return request

    def counts(self) -> dict[str, int]:
        """Tasks by status so far (``active``: started or waiting to, not yet ended)."""
        out = dict.fromkeys(TASK_STATUSES, 0)
        for t in self.tasks:
            if t.status is not None:
                out[t.status] += 1
        out["active"] = self.active_users
        return out

    def task_rows(self) -> list[dict[str, Any]]:
        """One row per task (``tasks.parquet`` before the SLO verdict): a task still going when
        the run ended is ``unfinished``."""
        rows = []
        for t in self.tasks:
            sent = t.plan.calls[: len(t.request_ids)]
            end = t.end_s if t.status is not None else None
            rows.append({
                "task_id": t.plan.task_id, "calls": len(t.request_ids),
                "planned_calls": len(t.plan.calls), "start_s": t.plan.arrival_s, "end_s": end,
                "duration_s": None if end is None else end - t.plan.arrival_s,
                "status": t.status or "unfinished",
                "prompt_tokens": sum(c.prompt_tokens for c in sent),
                "output_tokens": sum(c.output_tokens for c in sent),
                "request_ids": list(t.request_ids)})
        return rows

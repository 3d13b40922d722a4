"""Invariants of an agentic run's ``tasks.parquet`` against its ``requests.parquet``:

- ``task_ledger``: each task has one known status (``TASK_STATUSES``), each call (request) is in
  exactly one task and every request is some task's call; the summary's task counts equal the
  rows';
- ``task_sequence``: a task's calls are sequential: no call is sent before its predecessor
  ended (``arrival_s >= end_s`` of the previous call, within ``TIME_EPS_S``), and the first
  call is sent at the task's start;
- ``task_status``: the status follows the calls': ``completed`` and ``context_limit`` tasks
  sent all their planned calls and each completed, and end when the last call ended;
  ``failed`` tasks end at their last call, the only one not completed; ``unfinished`` tasks
  have every call but the last completed.
"""

from __future__ import annotations

from typing import Any

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.workload.sessions import TASK_STATUSES


def check_tasks(requests: list[dict[str, Any]], tasks: list[dict[str, Any]],
                summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Every broken task invariant as (invariant, message) (see the module docstring); [] when
    all hold. ``invariants.check_results`` turns them into its violations."""
    out: list[tuple[str, str]] = []
    by_id = {r["request_id"]: r for r in requests}
    seen: dict[int, int] = {}
    for t in tasks:
        for rid in t["request_ids"]:
            if rid in seen or rid not in by_id:
                out.append(("task_ledger", f"task {t['task_id']}: call {rid} is "
                            f"{'in two tasks' if rid in seen else 'not a request'}"))
            seen[rid] = t["task_id"]
        if t["status"] not in TASK_STATUSES:
            out.append(("task_ledger", f"task {t['task_id']}: status {t['status']!r}"))
            continue
        calls = [by_id[r] for r in t["request_ids"] if r in by_id]
        out += [(kind, f"task {t['task_id']}: {msg}") for kind, msg in _task(t, calls)]
    stray = sorted(set(by_id) - set(seen))[:5]
    if stray:
        out.append(("task_ledger", f"requests in no task: {stray}"))
    out += [("task_ledger", msg) for msg in _counts(tasks, summary)]
    return out


def _task(t: dict[str, Any], calls: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not calls:
        return [("task_ledger", "no calls")]
    if abs(calls[0]["arrival_s"] - t["start_s"]) > TIME_EPS_S:
        out.append(("task_sequence", f"first call sent at {calls[0]['arrival_s']:.9g} s, the "
                    f"task started at {t['start_s']:.9g} s"))
    for a, b in zip(calls, calls[1:], strict=False):
        if a["end_s"] is None or b["arrival_s"] < a["end_s"] - TIME_EPS_S:
            out.append(("task_sequence", f"call {b['request_id']} sent at {b['arrival_s']:.9g} s "
                        f"before call {a['request_id']} ended ({a['end_s']})"))
    ok = [c["status"] == "completed" for c in calls]
    status, last = t["status"], calls[-1]
    if not all(ok[:-1]):
        out.append(("task_status", f"a call before the last did not complete ({status})"))
    if status in ("completed", "context_limit") and (not ok[-1]
                                                     or len(calls) != t["planned_calls"]):
        out.append(("task_status", f"{status} with {sum(ok)} of {t['planned_calls']} planned "
                    "calls completed"))
    if status == "failed" and ok[-1]:
        out.append(("task_status", "failed, yet its last call completed"))
    if status != "unfinished" and (t["end_s"] is None or last["end_s"] is None
                                   or abs(t["end_s"] - last["end_s"]) > TIME_EPS_S):
        out.append(("task_status", f"ends at {t['end_s']}, its last call at {last['end_s']}"))
    return out


def _counts(tasks: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    if "tasks" not in summary:
        return []
    out = []
    if summary["tasks"] != len(tasks):
        out.append(f"summary says {summary['tasks']} tasks, tasks.parquet has {len(tasks)}")
    for status, n in (summary.get("tasks_by_status") or {}).items():
        rows = sum(t["status"] == status for t in tasks)
        if rows != n:
            out.append(f"summary says {n} {status} tasks, tasks.parquet has {rows}")
    return out

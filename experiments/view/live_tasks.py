"""The live view's task line (agentic workloads): tasks by status, from the load generator's
state report. Pure: a snapshot's ``live.loadgen`` dict in, a Rich ``Text`` out (or nothing)."""

from __future__ import annotations

from typing import Any

from rich.text import Text


def task_line(loadgen: dict[str, Any]) -> list[Text]:
    """``[Text]`` with one line of task counts, or ``[]`` when the workload has no tasks."""
    tasks = loadgen.get("tasks")
    if not tasks:
        return []
    total = loadgen.get("tasks_total", "?")
    return [Text(f"tasks: {total} planned · active {tasks.get('active', 0)} · completed "
                 f"{tasks.get('completed', 0)} · context limit {tasks.get('context_limit', 0)}"
                 f" · failed {tasks.get('failed', 0)} · unfinished {tasks.get('unfinished', 0)}")]

"""``tasks.parquet`` and the task keys of summary.json, for agentic workloads.

One row per task (the load generator's ``AgentSessions.task_rows``) plus the SLO verdict, and
the headline task metrics: completion time percentiles, tasks per hour, dollars and joules per
completed task, tasks per dollar and the share of tasks done within ``[slo] task_s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.config import Experiment
from disagg.experiments.results.columns import by_name

TASK_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("calls", pa.int64()), ("planned_calls", pa.int64()),
    ("start_s", pa.float64()), ("end_s", pa.float64()), ("duration_s", pa.float64()),
    ("status", pa.string()), ("prompt_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("tokens", pa.int64()), ("slo_met", pa.bool_()), ("request_ids", pa.list_(pa.int64())),
])
"""tasks.parquet: times in emu s; ``tokens`` = prompt + output tokens of the calls sent;
``slo_met``: completed within ``[slo] task_s`` (completed, when no target is set)."""


def task_rows(raw: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The load generator's task rows, or None when the workload has no tasks."""
    return by_name(raw).get("loadgen", {}).get("tasks")


def tasks_table(exp: Experiment, raw: dict[str, Any]) -> pa.Table | None:
    """tasks.parquet's table (None unless the workload is agentic)."""
    rows = task_rows(raw)
    if rows is None:
        return None
    target = exp.slo.task_s
    out = []
    for r in rows:
        done = r["status"] == "completed"
        met = done and (target is None or r["duration_s"] <= target + TIME_EPS_S)
        out.append({**r, "tokens": r["prompt_tokens"] + r["output_tokens"], "slo_met": met})
    return pa.Table.from_pylist(out, schema=TASK_SCHEMA)


def task_summary(exp: Experiment, table: pa.Table, summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's task keys, from tasks.parquet and the run's duration, price and power."""
    # imported here: only an agentic run has tasks, and the sessions' module brings the agentic
    # workload's planning (≈ 3 ms to import) into every run's results
    from disagg.cluster.workload.sessions import TASK_STATUSES

    status = np.asarray(table.column("status").to_pylist(), dtype=object)
    done = status == "completed"
    times = np.asarray(table.column("duration_s").to_pylist(), dtype=object)[done]
    times = times.astype(np.float64)
    n_done, end_s = int(done.sum()), float(summary.get("duration_s") or 0.0)
    out: dict[str, Any] = {"tasks": table.num_rows, "tasks_completed": n_done,
                           "tasks_by_status": {s: int((status == s).sum()) for s in TASK_STATUSES}}
    for p in (50, 90, 99):
        out[f"p{p}_task_s"] = float(np.percentile(times, p)) if n_done else None
    out["mean_task_s"] = float(times.mean()) if n_done else None
    out["mean_calls_per_task"] = float(np.mean(table.column("calls").to_pylist())) \
        if table.num_rows else None
    out["tasks_per_hour"] = n_done / end_s * 3600 if end_s else 0.0
    price, power = summary.get("cluster_price_per_hour_usd"), summary.get("cluster_power_w")
    cost = None if price is None else price * end_s / 3600
    out["cost_per_task_usd"] = cost / n_done if cost is not None and n_done else None
    out["tasks_per_dollar"] = n_done / cost if cost else None
    out["energy_per_task_j"] = power * end_s / n_done if power is not None and n_done else None
    met = int(np.sum(table.column("slo_met").to_pylist()))
    out["task_slo_s"] = exp.slo.task_s
    out["task_slo_attainment"] = met / table.num_rows if table.num_rows else None
    return out

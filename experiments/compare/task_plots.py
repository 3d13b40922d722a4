"""The compare report's task piece (agentic workloads): a CDF of task completion times per
cluster or policy, from each run's ``tasks.parquet`` (completed tasks; repeats pooled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from disagg.experiments.compare.data import SavedRun, policies, rates
from disagg.experiments.compare.plots import _by_cell, _per_rate_axes, _png

TASK_PLOT_TITLES = {"task_cdf.png": "task completion time CDF"}
"""Plot file -> title, for runs that have tasks."""


def _task_times(path: Path) -> list[float]:
    """Completion times (s) of a run folder's completed tasks; [] without tasks.parquet."""
    f = path / "tasks.parquet"
    if not f.is_file():
        return []
    rows = pq.read_table(f, columns=["status", "duration_s"]).to_pylist()
    return [r["duration_s"] for r in rows if r["status"] == "completed"]


def task_plots(runs: list[SavedRun]) -> dict[str, bytes]:
    """``{"task_cdf.png": png}`` when the runs have tasks, else ``{}``."""
    cells = _by_cell(runs)
    times = {key: [t for run in group for t in _task_times(run.path)]
             for key, group in cells.items()}
    if not any(times.values()):
        return {}
    fig, axes = _per_rate_axes(len(rates(runs)), "task completion time CDF (repeats pooled)")
    for ax, rate in zip(axes, rates(runs), strict=True):
        for policy in policies(runs):
            v = times.get((policy, rate), [])
            if v:
                x = np.sort(np.asarray(v))
                ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=policy)
        target = runs[0].experiment.slo.task_s
        if target is not None:
            ax.axvline(target, color="grey", linestyle="--", linewidth=1, label="task SLO")
        ax.set_title(f"{rate:g} tasks/s")
        ax.set_xlabel("task completion time (s)")
        ax.set_ylabel("fraction of completed tasks")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return {"task_cdf.png": _png(fig)}

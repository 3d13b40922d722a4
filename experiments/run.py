"""Run one experiment on the engine it names and turn the raw results into the results contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from disagg.actors.engines.build import check_experiment
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import Experiment
from disagg.experiments.results.summary import makespan, summarize
from disagg.experiments.results.tables import (
    request_rows,
    requests_table,
    timeseries_table,
    transfer_rows,
    transfers_table,
)
from disagg.experiments.results.timeline import event_log, event_log_bytes
from disagg.experiments.results.writing import write_results


@dataclass
class RunResult:
    """A finished run: its tables, its summary and where they were written (if anywhere)."""

    experiment: Experiment
    tables: dict[str, pa.Table]
    summary: dict[str, Any]
    raw: dict[str, Any]
    out_dir: Path | None = None

    @property
    def interrupted(self) -> bool:
        """True if the run was stopped early (its unfinished requests were cancelled)."""
        return self.raw.get("unfinished", {}).get("status") == "cancelled"


def execute(exp: Experiment, address: str | None = None, progress: Any = None,
            live_s: float = 0.0, stop: StopFlag | None = None, checked: bool = False
            ) -> dict[str, Any]:
    """Run the components on the experiment's engine and return their raw results.

    ``progress`` gets collector snapshots while the run goes; ``live_s`` > 0 (wall s) makes the
    units report their state so the snapshots carry the live picture (``experiments/view/live.py``).
    ``stop``, once requested, ends the run early (unfinished requests ``cancelled``). ``checked``
    says the caller already ran :func:`check_experiment` (the command line does, once).
    """
    if not checked:
        check_experiment(exp)
    if exp.experiment.engine == "virtual":
        return run_virtual(exp, progress=progress, live_s=live_s or 0.5, stop=stop)
    from disagg.actors.engines.ray_engine import run_ray  # Ray is imported only when used

    return run_ray(exp, address=address, progress=progress, live_s=live_s, stop=stop)


def assemble(exp: Experiment, raw: dict[str, Any]) -> RunResult:
    """Build the tables and the summary from raw component results."""
    rows = request_rows(raw)
    transfers = transfer_rows(raw)
    timeseries = timeseries_table(raw, exp, makespan(rows))
    summary = summarize(exp, raw, rows, transfers, timeseries)
    tables = {
        "requests": requests_table(rows),
        "timeseries": timeseries,
        "transfers": transfers_table(transfers),
    }
    return RunResult(exp, tables, summary, raw)


def _extra_files(result: RunResult) -> dict[str, bytes]:
    """Optional files of the results folder: ``events.msgpack`` if ``output.event_log``."""
    exp = result.experiment
    if not exp.output.event_log:
        return {}

    events = event_log(result.raw, request_rows(result.raw))
    return {"events.msgpack": event_log_bytes(events, exp.experiment.name)}


def run_experiment(exp: Experiment, out_dir: Path | None = None, address: str | None = None,
                   progress: Any = None, live_s: float = 0.0, stop: StopFlag | None = None,
                   checked: bool = False) -> RunResult:
    """Run, assemble and (if ``out_dir`` is given) write the results folder (also for a run
    stopped early by ``stop``: what it holds so far)."""
    raw = execute(exp, address=address, progress=progress, live_s=live_s, stop=stop,
                  checked=checked)
    result = assemble(exp, raw)
    if out_dir is not None:
        result.out_dir = write_results(out_dir, exp, result.tables, result.summary,
                                       extra=_extra_files(result))
    return result

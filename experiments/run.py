"""Run one experiment on the engine it names and turn the raw results into the results contract.

With an output folder the run streams: finished request rows are written as Parquet row groups
while it goes (``results/streaming.py``), and the summary is computed from running aggregates of
the written columns, read back batch by batch (``results/aggregate.py``), and the components'. Without one, rows are kept in memory (tests, compare).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from disagg.actors.engines.engine import Engine, RunResults, Sink, raise_failure, run_engine
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual import VirtualEngine
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ComponentFailed
from disagg.experiments.checks import check_experiment
from disagg.experiments.results.aggregate import request_aggregates, transfer_aggregates
from disagg.experiments.results.summary import summarize
from disagg.experiments.results.tasks import task_summary, tasks_table
from disagg.experiments.results.tables import (
    final_series,
    request_columns,
    requests_table,
    series_table,
    transfers_table,
)
from disagg.experiments.results.streaming import ResultsWriter
from disagg.experiments.results.writing import write_results


class FolderTables(Mapping[str, pa.Table]):
    """A written results folder's tables, each read from its Parquet file when asked for."""

    def __init__(self, folder: Path, names: tuple[str, ...]) -> None:
        self.folder = folder
        self.names = names

    def __getitem__(self, name: str) -> pa.Table:
        if name not in self.names:
            raise KeyError(name)
        return pq.read_table(self.folder / f"{name}.parquet")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class RunResult:
    """A finished run: its tables, its summary and where they were written (if anywhere)."""

    experiment: Experiment
    tables: Mapping[str, pa.Table]
    summary: dict[str, Any]
    raw: dict[str, Any]
    out_dir: Path | None = None

    @property
    def interrupted(self) -> bool:
        """True if the run was stopped early (its unfinished requests were cancelled)."""
        return self.raw.get("unfinished", {}).get("status") == "cancelled"


def engine_for(exp: Experiment, address: str | None = None, sink: Sink | None = None,
               live_s: float = 0.0) -> Engine:
    """The engine ``exp`` names (``experiment.engine``), sending finished rows to ``sink``."""
    if exp.experiment.engine == "virtual":
        return VirtualEngine(exp, sink, live_s)
    from disagg.actors.engines.ray_engine import RayEngine  # Ray is imported only when used

    return RayEngine(exp, address, sink, live_s)


def run_results(exp: Experiment, address: str | None = None, progress: Any = None,
                live_s: float = 0.0, stop: StopFlag | None = None, checked: bool = False,
                sink: Callable[[Any], None] | None = None) -> RunResults:
    """Run the components on the experiment's engine and return their :class:`RunResults`
    (a component failure ends the run and is in ``failure``, not raised).

    ``progress`` gets collector snapshots while the run goes; ``live_s`` > 0 (wall s) makes the
    units report their state so the snapshots carry the live picture (``experiments/view/live.py``).
    ``stop``, once requested, ends the run early (unfinished requests ``cancelled``). ``checked``
    says the caller already ran :func:`check_experiment` (the command line does, once).
    Finished request rows go to ``sink`` as the run goes, or (no sink) into ``requests``.
    """
    if not checked:
        check_experiment(exp)
    return run_engine(engine_for(exp, address, sink, live_s), stop, progress)


def execute(exp: Experiment, address: str | None = None, progress: Any = None,
            live_s: float = 0.0, stop: StopFlag | None = None, checked: bool = False,
            sink: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """:func:`run_results` as the raw dict; raises :class:`ComponentFailed` if a component
    failed (the rows reached so far are in ``sink``)."""
    return raise_failure(run_results(exp, address, progress, live_s, stop, checked,
                                     sink)).as_raw()


def assemble(exp: Experiment, raw: dict[str, Any]) -> RunResult:
    """Build the tables and the summary from raw results whose rows were kept in memory."""
    requests = requests_table(raw["requests"], request_columns(exp))
    transfers = transfers_table(raw["transfers"])
    agg = request_aggregates(requests, exp.model, exp.slo)
    timeseries = series_table(raw["series"] + final_series(raw, exp, agg.makespan_s))
    summary = summarize(exp, raw, agg, transfer_aggregates(transfers, timeseries))
    tables = {"requests": requests, "timeseries": timeseries, "transfers": transfers}
    tables.update(_with_tasks(exp, raw, summary))
    return RunResult(exp, tables, summary, raw)


def _with_tasks(exp: Experiment, raw: dict[str, Any], summary: dict[str, Any]
                ) -> dict[str, pa.Table]:
    """An agentic run's ``tasks`` table (its keys added to ``summary``); none otherwise."""
    table = tasks_table(exp, raw)
    if table is None:
        return {}
    summary.update(task_summary(exp, table, summary))
    return {"tasks": table}


def _extra_files(exp: Experiment, raw: dict[str, Any], requests: pa.Table,
                 transfers: pa.Table) -> dict[str, bytes]:
    """Optional files of the results folder: ``events.msgpack`` if ``output.event_log``."""
    if not exp.output.event_log:
        return {}
    # deferred: only a run with an event log needs msgpack (~5 ms CPU to import)
    from disagg.experiments.results.timeline import event_log, event_log_bytes

    events = event_log(raw, requests.to_pylist(), transfers.to_pylist())
    return {"events.msgpack": event_log_bytes(events, exp.experiment.name)}


def _streamed(exp: Experiment, out_dir: Path, address: str | None, progress: Any,
              live_s: float, stop: StopFlag | None, checked: bool) -> RunResult:
    writer = ResultsWriter(out_dir, request_columns(exp))
    try:
        results = run_results(exp, address=address, progress=progress, live_s=live_s,
                              stop=stop, checked=checked, sink=writer.write)
        raw = results.as_raw()
        writer.close_tables(keep_open=("timeseries",))
        agg = request_aggregates(writer.path("requests"), exp.model, exp.slo)
        writer.write_series(final_series(raw, exp, agg.makespan_s))
        writer.close_tables()
        tr = transfer_aggregates(writer.path("transfers"), writer.path("timeseries"))
        summary = summarize(exp, raw, agg, tr)
        tasks = _with_tasks(exp, raw, summary)
        extra = (_extra_files(exp, raw, writer.read("requests"), writer.read("transfers"))
                 if exp.output.event_log else {})
    except BaseException:
        writer.abort()
        raise
    folder = writer.finish(exp, tasks, summary, extra)
    tables = FolderTables(folder, ("requests", "timeseries", "transfers", *tasks))
    return RunResult(exp, tables, summary, raw, folder)


def write_run(exp: Experiment, results: RunResults, out_dir: Path | None) -> RunResult:
    """Assemble results whose rows were kept in memory and write them to ``out_dir`` (if given);
    raises the run's :class:`ComponentFailed` once they are written."""
    result = assemble(exp, results.as_raw())
    if out_dir is not None:
        result.out_dir = write_results(out_dir, exp, dict(result.tables), result.summary)
    if results.failure is not None:
        results.failure.result = result  # type: ignore[attr-defined]
    raise_failure(results)
    return result


def run_experiment(exp: Experiment, out_dir: Path | None = None, address: str | None = None,
                   progress: Any = None, live_s: float = 0.0, stop: StopFlag | None = None,
                   checked: bool = False) -> RunResult:
    """Run, assemble and (if ``out_dir`` is given) write the results folder, streaming (also for
    a run stopped early by ``stop`` or ended by a failure: what it holds so far). A component
    failure raises :class:`ComponentFailed` once the folder is written (its ``result``: the
    :class:`RunResult` reached)."""
    if out_dir is not None:
        result = _streamed(exp, Path(out_dir), address, progress, live_s, stop, checked)
        failed = result.raw.get("component_failed")
        if failed is not None:
            error = ComponentFailed(failed["name"], failed["exc_type"], failed["message"])
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result
    return write_run(exp, run_results(exp, address=address, progress=progress, live_s=live_s,
                                      stop=stop, checked=checked), None)


__all__ = ["RunResult", "assemble", "engine_for", "execute", "run_experiment", "run_results",
           "write_results", "write_run"]

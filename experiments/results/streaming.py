"""A run's results folder written while the run goes: :class:`ResultsWriter` streams
``requests.parquet``, ``transfers.parquet`` and ``timeseries.parquet`` as row groups into a
temporary sibling of the output folder (``results/writing.py`` says how it is swapped into place
and what is never replaced). Rows are converted to Arrow on the run's thread; Arrow encodes and
writes them on a worker thread (``results/background.py``), in order."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.parquet as pq

from disagg.cluster.config import Experiment
from disagg.cluster.errors import OutputInTheWay, OutputWriteError
from disagg.experiments.results.background import OrderedWrites
from disagg.experiments.results.guard import MARKER, marker_bytes
from disagg.experiments.results.tables import requests_table, series_table, transfers_table
from disagg.experiments.results.writing import config_toml, json_ready, swap_into_place

_F = TypeVar("_F", bound=Callable[..., Any])


def _output_errors(method: _F) -> _F:
    """A :class:`ResultsWriter` method whose OS errors become :class:`OutputWriteError`."""

    @functools.wraps(method)
    def wrapper(self: ResultsWriter, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            raise OutputWriteError(self.out_dir, e) from e

    return cast(_F, wrapper)


ROW_GROUP_ROWS = 16_384
"""Rows buffered as plain data before they are converted and written as one row group: one
conversion per row group (not per drain) keeps Arrow from holding many tiny buffers, and few row
groups keep the writer's footer metadata, which it holds until closing, small."""

_TO_TABLE: dict[str, Callable[[list[dict[str, Any]]], pa.Table]] = {
    "requests": requests_table, "transfers": transfers_table, "timeseries": series_table}


def _dictionary_columns(name: str, schema: pa.Schema) -> list[str] | bool:
    """The columns of streamed table ``name`` that Parquet stores dictionary-encoded. Requests'
    and transfers' numbers are mostly distinct per row: a dictionary of them is built for
    nothing (writing requests.parquet costs ~half as much without, and the file is smaller);
    their strings (statuses, units, hosts) repeat. The timeseries' numbers repeat (idle bins,
    NaN columns): all its columns. Only how values are stored; a reader reads the same table."""
    if name == "timeseries":
        return True
    return [f.name for f in schema if f.type == pa.string()]


class ResultsWriter:
    """A results folder written as the run goes: request and transfer rows and timeseries bins
    are appended as Parquet row groups (of ``ROW_GROUP_ROWS`` rows) into a temporary sibling of
    ``out_dir``; :meth:`finish` adds the rest and swaps the folder into place, :meth:`abort`
    removes it. A streamed table is complete on disk once :meth:`path` or :meth:`read` returns
    (after :meth:`close_tables`); an error of a write raises from the next call that waits for
    it, :meth:`finish` at the latest."""

    @_output_errors
    def __init__(self, out_dir: Path, request_columns: list[str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=self.out_dir.parent))
        try:
            (self.tmp / MARKER).write_bytes(marker_bytes("run"))
        except OSError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.request_columns = request_columns  # requests.parquet's columns (tables.request_columns)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._writes = OrderedWrites()  # the writers' calls, in order, off the run's thread
        self._pending: dict[str, list[dict[str, Any]]] = {n: [] for n in _TO_TABLE}
        self._counts: dict[str, int] = dict.fromkeys(_TO_TABLE, 0)  # rows pending
        self._closed: set[str] = set()
        self.rows_written = 0

    @_output_errors
    def write(self, drained: Any) -> None:
        """Append a drain's rows (``actors.components.collector.Drained``)."""
        self._append("requests", drained.rows, len(drained.rows))
        self.rows_written += len(drained.rows)
        self._append("transfers", drained.transfers, len(drained.transfers))
        self.write_series(drained.series)

    @_output_errors
    def write_series(self, series: list[dict[str, Any]]) -> None:
        """Append timeseries bins (per-bin series, ``tables.series_table``)."""
        bins = sum(len(s["busy"] if "busy" in s else s["bytes"]) for s in series)
        self._append("timeseries", series, bins)

    def _append(self, name: str, items: list[dict[str, Any]], rows: int) -> None:
        """Buffer ``items``; write a row group once ``ROW_GROUP_ROWS`` rows are pending."""
        self._pending[name].extend(items)
        self._counts[name] += rows
        if self._counts[name] >= ROW_GROUP_ROWS:
            self._flush(name)

    def _flush(self, name: str, empty_ok: bool = False) -> None:
        items, self._pending[name], self._counts[name] = self._pending[name], [], 0
        if not items and not empty_ok:
            return
        table = (requests_table(items, self.request_columns) if name == "requests"
                 else _TO_TABLE[name](items))
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(self.tmp / f"{name}.parquet", table.schema,
                                                   use_dictionary=_dictionary_columns(name,
                                                                                      table.schema))
        self._writes.submit(name, self._writers[name].write_table, table,
                            row_group_size=max(1, table.num_rows))

    @_output_errors
    def close_tables(self, keep_open: tuple[str, ...] = ()) -> None:
        """Close the streamed tables but ``keep_open`` (an empty table for one that got no
        rows); a closed table gets no more rows."""
        for name in _TO_TABLE:
            if name in keep_open or name in self._closed:
                continue
            self._flush(name, empty_ok=name not in self._writers)
            self._writes.submit(name, self._writers.pop(name).close)
            self._closed.add(name)

    @_output_errors
    def path(self, name: str) -> Path:
        """Where the streamed table ``name`` is written (in the temporary folder), once every
        write of it handed in so far is done."""
        self._writes.wait(name)
        return self.tmp / f"{name}.parquet"

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """A streamed table read back (only ``columns``, if given), after :meth:`close_tables`."""
        return pq.read_table(self.path(name), columns=columns)

    @_output_errors
    def finish(self, exp: Experiment, tables: dict[str, pa.Table], summary: dict[str, Any],
               extra: dict[str, bytes] | None = None) -> Path:
        """Write the remaining tables, summary.json, config.toml and ``extra``; swap into place."""
        try:
            self._writes.wait()
            self._writes.close()
            for name, table in tables.items():
                pq.write_table(table, self.tmp / f"{name}.parquet")
            (self.tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2) + "\n")
            (self.tmp / "config.toml").write_text(config_toml(exp))
            for name, data in (extra or {}).items():
                (self.tmp / name).write_bytes(data)
            swap_into_place(self.tmp, self.out_dir)
        except OutputInTheWay:
            raise  # the finished results stay in self.tmp (the error names it)
        except BaseException:
            self.abort()
            raise
        return self.out_dir

    def abort(self) -> None:
        """Drop the temporary folder (the run failed): the worker's call in progress ends
        first, the queued ones are dropped."""
        self._writes.close(cancel=True)
        self._pending = {n: [] for n in _TO_TABLE}
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

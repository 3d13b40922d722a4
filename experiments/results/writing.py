"""Write a run's results folder atomically: everything goes to a temporary sibling folder that is
renamed into place only when complete, so a failed run never leaves half-written output. Every
folder written holds disagg's marker file (``experiments/results/guard.py``); only such a folder is
ever replaced. :class:`ResultsWriter` streams ``requests.parquet``, ``transfers.parquet`` and
``timeseries.parquet`` into that folder as row groups while the run goes."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w

from disagg.cluster.config import Experiment
from disagg.cluster.errors import OutputInTheWay, OutputWriteError
from disagg.experiments.results.guard import (
    DISAGG_NAMES,
    MARKER,
    marker_bytes,
    written_by_disagg,
)
from disagg.experiments.results.tables import requests_table, series_table, transfers_table


def _toml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_ready(v) for v in value if v is not None]
    return value


def config_toml(exp: Experiment) -> str:
    """The fully resolved experiment as TOML (catalog entries expanded, defaults filled in)."""
    return tomli_w.dumps(_toml_ready(exp.model_dump(mode="python")))


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


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


def user_dir_mode() -> int:
    """The permission bits ``mkdir`` gives a new folder under the process's umask (0o755 under
    the usual 022), read without changing it (Linux ``/proc/self/status``; else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o777 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out_dir``, replacing an older folder only if disagg
    wrote it (it holds the marker); anything else there is left alone and ``tmp`` is kept. The
    folder gets the user's umask (``mkdtemp`` made it 0700 while it was being written)."""
    tmp.chmod(user_dir_mode())
    if out_dir.exists() or out_dir.is_symlink():
        if not written_by_disagg(out_dir):
            raise OutputInTheWay(f"{out_dir} appeared during the run and was not written by "
                                 f"disagg; it was left alone and the results are in {tmp}")
        # a fresh hidden name (never a user's folder), and no signal between the two renames: a
        # Ctrl-C leaves either the old folder or the new one in place, never neither
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        with _signals_held():
            out_dir.rename(old)
            tmp.rename(out_dir)
            kept = _carry_foreign(old, out_dir)
        if kept:
            shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def _carry_foreign(old: Path, new: Path) -> bool:
    """Move every entry of the replaced folder ``old`` that disagg did not write
    (:data:`~disagg.experiments.results.guard.DISAGG_NAMES`) into ``new``; False (``old`` is then
    kept, never deleted) if one could not be moved."""
    for entry in old.iterdir():
        if entry.name in DISAGG_NAMES:
            continue
        try:
            if (new / entry.name).exists():
                return False
            entry.rename(new / entry.name)
        except OSError:
            return False
    return True


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when the block ends) in the main thread."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def staged_folder(out_dir: Path, kind: str) -> Iterator[Path]:
    """A fresh hidden sibling of ``out_dir`` holding disagg's marker (``kind``: run, compare), to
    fill and then :func:`swap_into_place`; removed if the block raises — except when ``out_dir``
    was taken meanwhile (:class:`OutputInTheWay` says where the finished folder waits)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / MARKER).write_bytes(marker_bytes(kind))
        yield tmp
    except OutputInTheWay:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_results(out_dir: Path, exp: Experiment, tables: Mapping[str, pa.Table],
                  summary: dict[str, Any], extra: dict[str, bytes] | None = None) -> Path:
    """Write ``tables`` as Parquet, summary.json and config.toml into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    try:
        with staged_folder(out_dir, "run") as tmp:
            for name, table in tables.items():
                pq.write_table(table, tmp / f"{name}.parquet")
            (tmp / "summary.json").write_text(json.dumps(_json_ready(summary), indent=2) + "\n")
            (tmp / "config.toml").write_text(config_toml(exp))
            for name, data in (extra or {}).items():
                (tmp / name).write_bytes(data)
            swap_into_place(tmp, out_dir)
    except OSError as e:
        raise OutputWriteError(out_dir, e) from e
    return out_dir


ROW_GROUP_ROWS = 16_384
"""Rows buffered as plain data before they are converted and written as one row group: one
conversion per row group (not per drain) keeps Arrow from holding many tiny buffers, and few row
groups keep the writer's footer metadata, which it holds until closing, small."""

_TO_TABLE: dict[str, Callable[[list[dict[str, Any]]], pa.Table]] = {"requests": requests_table, "transfers": transfers_table, "timeseries": series_table}


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
    removes it."""

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
        self._writers[name].write_table(table, row_group_size=max(1, table.num_rows))

    @_output_errors
    def close_tables(self, keep_open: tuple[str, ...] = ()) -> None:
        """Close the streamed tables but ``keep_open`` (an empty table for one that got no
        rows); a closed table gets no more rows."""
        for name in _TO_TABLE:
            if name in keep_open or name in self._closed:
                continue
            self._flush(name, empty_ok=name not in self._writers)
            self._writers.pop(name).close()
            self._closed.add(name)

    def path(self, name: str) -> Path:
        """Where the streamed table ``name`` is written (in the temporary folder)."""
        return self.tmp / f"{name}.parquet"

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """A streamed table read back (only ``columns``, if given), after :meth:`close_tables`."""
        return pq.read_table(self.tmp / f"{name}.parquet", columns=columns)

    @_output_errors
    def finish(self, exp: Experiment, tables: dict[str, pa.Table], summary: dict[str, Any],
               extra: dict[str, bytes] | None = None) -> Path:
        """Write the remaining tables, summary.json, config.toml and ``extra``; swap into place."""
        try:
            for name, table in tables.items():
                pq.write_table(table, self.tmp / f"{name}.parquet")
            (self.tmp / "summary.json").write_text(json.dumps(_json_ready(summary), indent=2) + "\n")
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
        """Drop the temporary folder (the run failed)."""
        self._pending = {n: [] for n in _TO_TABLE}
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

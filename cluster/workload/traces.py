"""Request traces read from files: Azure / BurstGPT style CSV and Mooncake style JSONL.

A trace is three aligned arrays: arrival times in integer nanoseconds (absolute, as the file
gives them; so inter-arrival times are exact), prompt tokens and output tokens; a Mooncake trace
also gives each request's prefix-block hash ids (``hash_ids``, 512-token blocks). Bad input raises
:class:`ConfigError` naming the file, the line number and the problem. Reading a file the config
names is the only I/O here; results are cached per (path, size, mtime, format). The config
model that names a trace file is ``trace_source.TraceSource``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.errors import ConfigError
from disagg.cluster.workload.trace_jsonl import plain_jsonl

TimestampUnit = Literal["datetime", "s", "ms"]
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$")
_INT = re.compile(r"^[+-]?\d+(?:\.0*)?$")
INT64_MAX = 2**63 - 1  # arrivals and token counts are int64 arrays


@dataclass(frozen=True)
class TraceColumns:
    """Which columns (CSV header names or JSON keys) hold time, prompt and output tokens."""

    timestamp: str
    prompt_tokens: str
    output_tokens: str
    unit: TimestampUnit
    hashes: str | None = None  # JSON key of the prefix-block hash ids (JSONL formats only)


FORMATS: dict[str, TraceColumns] = {
    "azure": TraceColumns("TIMESTAMP", "ContextTokens", "GeneratedTokens", "datetime"),
    "burstgpt": TraceColumns("Timestamp", "Request tokens", "Response tokens", "s"),
    "mooncake": TraceColumns("timestamp", "input_length", "output_length", "ms", "hash_ids"),
}


@dataclass(frozen=True)
class Trace:
    """A parsed trace in time (and file) order: arrivals (int ns), prompt and output tokens.

    ``dropped_rows`` counts rows with zero prompt or output tokens (BurstGPT logs failed
    requests that way); they are not requests the cluster could serve.
    """

    source: str
    arrival_ns: NDArray[np.int64]
    prompt_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    dropped_rows: int = 0
    prefix_hashes: tuple[tuple[int, ...], ...] = ()

    def hashes_of(self, row: int) -> tuple[int, ...]:
        """The prefix-block hash ids of ``row`` (empty when the trace has none)."""
        return self.prefix_hashes[row] if self.prefix_hashes else ()

    def __len__(self) -> int:
        return len(self.arrival_ns)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last arrival."""
        return float(self.arrival_ns[-1] - self.arrival_ns[0]) / 1e9 if len(self) else 0.0


def _bad(path: str, line: int, problem: str) -> ConfigError:
    return ConfigError(f"trace {path}, line {line}: {problem}")


def parse_timestamp_ns(text: str, unit: TimestampUnit) -> int:
    """``text`` as integer nanoseconds; ValueError if it does not parse in ``unit``."""
    text = text.strip()
    if unit == "datetime":
        m = _DATETIME.match(text)
        if m is None:
            raise ValueError("expected YYYY-MM-DD HH:MM:SS[.fraction]")
        whole = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc)
        frac = (m.group(2) or "0").ljust(9, "0")
        return int(whole.timestamp()) * 1_000_000_000 + int(frac)
    value = float(text)
    if not np.isfinite(value):
        raise ValueError("not a finite number")
    return round(value * (1e9 if unit == "s" else 1e6))


def _tokens(text: Any, column: str) -> int:
    """A non-negative integer token count, or a ValueError saying what is wrong."""
    shown = repr(text)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"{column!r}: value {shown} is not an integer token count")
    if isinstance(text, str):
        if not _INT.match(text.strip()):
            raise ValueError(f"{column!r}: value {shown} is not an integer token count")
        text = float(text)
    if isinstance(text, float) and not text.is_integer():
        raise ValueError(f"{column!r}: value {shown} is not an integer token count")
    if text < 0:
        raise ValueError(f"{column!r}: value {shown} is negative; token counts are >= 0")
    if text > INT64_MAX:
        raise ValueError(f"{column!r}: value {shown} is beyond 64 bits; allowed: token counts "
                         f"<= {INT64_MAX}")
    return int(text)


def _row(path: str, line: int, get: Any, cols: TraceColumns) -> tuple[int, int, int]:
    values = []
    for key in (cols.timestamp, cols.prompt_tokens, cols.output_tokens):
        value = get(key)
        if value is None or value == "":
            raise _bad(path, line, f"column {key!r} has no value")
        values.append(value)
    try:
        ts = parse_timestamp_ns(str(values[0]), cols.unit)
    except ValueError as e:
        raise _bad(path, line, f"column {cols.timestamp!r}: cannot parse timestamp "
                               f"{values[0]!r} as {cols.unit} ({e})") from None
    if not -INT64_MAX <= ts <= INT64_MAX:
        raise _bad(path, line, f"column {cols.timestamp!r}: timestamp {values[0]!r} is beyond "
                               f"64 bits of nanoseconds; allowed: times within +-292 years")
    try:
        return ts, _tokens(values[1], cols.prompt_tokens), _tokens(values[2], cols.output_tokens)
    except ValueError as e:
        raise _bad(path, line, f"column {e}") from None


def _in_order(path: str, line: int, row: tuple[int, int, int],
              rows: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """``row`` if its time is not before the previous row's, else a ConfigError: an unsorted
    trace is refused rather than silently reordered (it usually means a wrong time column)."""
    if rows and row[0] < rows[-1][0]:
        back = (rows[-1][0] - row[0]) / 1e9
        raise _bad(path, line, f"timestamp is {back:g} s before the previous row's; allowed: "
                               "rows in time order (sort the file by its time column)")
    return row


def _read_csv(path: str, cols: TraceColumns) -> list[tuple[int, int, int]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise _bad(path, 1, "the file is empty; expected a header line naming the columns")
        header = [h.strip() for h in header]
        for key in (cols.timestamp, cols.prompt_tokens, cols.output_tokens):
            if key not in header:
                raise _bad(path, 1, f"missing column {key!r} (the header has: {', '.join(header)})")
        index = {h: i for i, h in enumerate(header)}
        rows: list[tuple[int, int, int]] = []
        for fields in reader:
            if not fields:
                continue
            def get(key: str) -> str | None:
                i = index[key]
                return fields[i] if i < len(fields) else None
            rows.append(_in_order(path, reader.line_num, _row(path, reader.line_num, get, cols),
                                  rows))
    return rows


def _hash_ids(path: str, line: int, value: Any, key: str) -> tuple[int, ...]:
    """A JSON list of non-negative integer block ids, or a ConfigError naming the line."""
    # plain ints only (JSON's bools are not), checked in C-speed passes: type (the count of
    # exact ints among the types: no Python-level step per id), then range
    if not (type(value) is list and list(map(type, value)).count(int) == len(value) and (
            not value or (min(value) >= 0 and max(value) <= INT64_MAX))):
        raise _bad(path, line, f"key {key!r}: value {str(value)[:60]} is not a list of "
                               "non-negative 64-bit integer block ids")
    return tuple(value)


def _plain_row(obj: dict[str, Any], cols: TraceColumns,
               last_ns: int) -> tuple[int, int, int] | None:
    """The row of a JSON object whose time (in s or ms) and token counts are plain integers in
    range and in time order, as :func:`_row` and :func:`_in_order` would give it; None for
    anything else (left to them, which also name what is wrong)."""
    ts, prompt, output = obj.get(cols.timestamp), obj.get(cols.prompt_tokens), obj.get(
        cols.output_tokens)
    if not (type(ts) is int and type(prompt) is int and type(output) is int
            and cols.unit != "datetime" and 0 <= prompt <= INT64_MAX and 0 <= output <= INT64_MAX
            and -INT64_MAX <= ts <= INT64_MAX):
        return None
    ns = round(float(ts) * (1e9 if cols.unit == "s" else 1e6))  # as parse_timestamp_ns(str(ts))
    if not last_ns <= ns <= INT64_MAX:
        return None
    return ns, prompt, output


# the C scanner json.loads runs (default decoder options; typeshed does not declare the attribute)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_line(path: str, line_no: int, line: str) -> Any:
    """The JSON value of one line (a ConfigError naming the line if it is not valid JSON).

    A line that is one value and its newline goes straight to the C scanner that
    :func:`json.loads` runs after its checks (Mooncake trace: 51 -> 42 ms of JSON parsing);
    anything else (spaces around the value, extra data, a stray BOM, bad JSON) goes through
    :func:`json.loads`, which names the problem."""
    try:
        obj, end = _SCAN(line, 0)
    except (StopIteration, ValueError):
        obj, end = None, -1
    if end == len(line) or (end == len(line) - 1 and line[end] == "\n"):
        return obj
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise _bad(path, line_no, f"not valid JSON: {e.msg}") from None


def _read_jsonl(path: str, cols: TraceColumns) -> tuple[NDArray[np.int64],
                                                        list[tuple[int, ...]]]:
    """Rows (arrival ns, prompt, output tokens) and hash ids of a JSONL trace: a file of plain
    rows in one call (``trace_jsonl.py``), anything else line by line."""
    plain = plain_jsonl(path, cols)
    if plain is not None:
        return plain
    rows, hashes = _read_jsonl_lines(path, cols)
    return np.array(rows, dtype=np.int64).reshape(-1, 3), hashes


def _read_jsonl_lines(path: str, cols: TraceColumns) -> tuple[list[tuple[int, int, int]],
                                                              list[tuple[int, ...]]]:
    """A JSONL trace read line by line; ConfigError naming the first bad line."""
    rows: list[tuple[int, int, int]] = []
    hashes: list[tuple[int, ...]] = []
    last_ns = -INT64_MAX
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            obj = _json_line(path, line_no, line)
            if not isinstance(obj, dict):
                raise _bad(path, line_no, "expected a JSON object per line")
            row = _plain_row(obj, cols, last_ns)
            if row is None:
                row = _checked_row(path, line_no, obj, cols, rows)
            rows.append(row)
            last_ns = row[0]
            if cols.hashes is not None:
                hashes.append(_hash_ids(path, line_no, obj.get(cols.hashes, []), cols.hashes))
    return rows, hashes


def _checked_row(path: str, line_no: int, obj: dict[str, Any], cols: TraceColumns,
                 rows: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """A JSON object's row through the full checks (a ConfigError naming what is wrong)."""
    for key in (cols.timestamp, cols.prompt_tokens, cols.output_tokens):
        if key not in obj:
            raise _bad(path, line_no, f"missing key {key!r} (the line has: {', '.join(obj)})")
    return _in_order(path, line_no, _row(path, line_no, obj.get, cols), rows)


def read_trace(path: str | Path, cols: TraceColumns, jsonl: bool = False) -> Trace:
    """Parse a trace file (cached while the file is unchanged); ConfigError on bad input."""
    path = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(f"trace {path}: cannot read: {e.strerror}") from None
    return _cached(path, st.st_size, st.st_mtime_ns, cols, jsonl)


@lru_cache(maxsize=16)
def _cached(path: str, _size: int, _mtime_ns: int, cols: TraceColumns, jsonl: bool) -> Trace:
    try:
        arr, hashes = _read_jsonl(path, cols) if jsonl else (
            np.array(_read_csv(path, cols), dtype=np.int64).reshape(-1, 3), [])
    except UnicodeDecodeError as e:
        raise ConfigError(f"trace {path}: not UTF-8 text (byte {e.start}); allowed: a CSV or "
                          "JSON-lines text file") from None
    except (csv.Error, IsADirectoryError) as e:
        raise ConfigError(f"trace {path}: cannot be parsed: {e}") from None
    if not len(arr):
        raise _bad(path, 2 if not jsonl else 1, "the file has no requests")
    keep = (arr[:, 1] > 0) & (arr[:, 2] > 0)
    if not keep.any():
        raise _bad(path, 2, "every request has zero prompt or output tokens")
    arr = arr[keep]  # already in time order: a row before its predecessor is refused above
    kept = [h for h, k in zip(hashes, keep, strict=True) if k] if hashes else []
    return Trace(path, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(),
                 dropped_rows=int((~keep).sum()), prefix_hashes=tuple(kept))

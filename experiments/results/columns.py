"""Reading a run's results back as arrays: component results by name and kind, and the columns
of a written table as numpy arrays, for the summary.

No ``pyarrow.compute`` here: importing it costs a run ~30 ms CPU, more than the numpy
equivalents below take on the whole Mooncake trace (tests/test_cli_usability.py checks that a
virtual run does not import it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def by_name(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Component results keyed by component name."""
    return {c["name"]: c for c in raw["components"]}


def units_of(raw: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The results of the units of one kind (``prefill`` or ``decode``), by their unit id."""
    return [c for c in raw["components"] if (c.get("unit") or {}).get("kind") == kind]


def busy_until(log: dict[str, Any], end_s: float) -> float:
    """A unit's busy emu seconds in [0, end_s] (``BinnedIntegral.until`` of its busy time)."""
    return float(log["window"].busy.until(end_s))


class Columns:
    """A table's columns as numpy arrays: numbers as float64 (null -> nan), strings as codes."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows
        self._num: dict[str, np.ndarray] = {}
        self._objects: dict[str, np.ndarray] = {}

    def num(self, name: str) -> np.ndarray:
        """A numeric or boolean column as float64, nulls as nan (a boolean column with nulls
        comes out of Arrow as objects, whose None numpy casts to nan)."""
        if name not in self._num:
            if name not in self.table.column_names:
                self._num[name] = np.full(self.rows, np.nan)
            else:
                col = self.table.column(name)
                self._num[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        return self._num[name]

    def _strings(self, name: str) -> np.ndarray:
        """A string column as an object array of str and None (null)."""
        if name not in self._objects:
            self._objects[name] = self.table.column(name).to_numpy(zero_copy_only=False)
        return self._objects[name]

    def codes(self, name: str) -> tuple[np.ndarray, list[str]]:
        """A string column as (codes, values), values in the order they first appear (as
        Arrow's dictionary encoding gives them); null -> -1."""
        index: dict[str, int] = {}
        codes = [-1 if v is None else index.setdefault(v, len(index))
                 for v in self._strings(name)]
        return np.array(codes, dtype=np.int64), list(index)

    def mask(self, name: str, value: str) -> np.ndarray:
        """Rows whose string column ``name`` equals ``value`` (a dictionary-encoded column is
        compared by its codes: no Python string per row)."""
        if self.rows == 0:
            return np.zeros(0, dtype=bool)
        col = self.table.column(name)
        if pa.types.is_dictionary(col.type):
            return np.concatenate([_dictionary_mask(chunk, value) for chunk in col.chunks])
        return np.asarray(self._strings(name) == value, dtype=bool)


def _dictionary_mask(chunk: pa.DictionaryArray, value: str) -> np.ndarray:
    """Rows of a dictionary array whose value is ``value`` (a null index is no row's: as a
    float nan, it equals no code)."""
    codes = [k for k, v in enumerate(chunk.dictionary.to_pylist()) if v == value]
    return np.isin(chunk.indices.to_numpy(zero_copy_only=False), codes)

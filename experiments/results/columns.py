"""Reading a run's results back as arrays: component results by name and kind, and the columns
of a written table as numpy arrays (no Python object per cell), for the summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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

    def num(self, name: str) -> np.ndarray:
        """A numeric or boolean column as float64, nulls as nan."""
        if name not in self._num:
            if name not in self.table.column_names:
                self._num[name] = np.full(self.rows, np.nan)
            else:
                col = self.table.column(name)
                if pa.types.is_boolean(col.type):
                    col = pc.cast(col, pa.float64())
                self._num[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        return self._num[name]

    def codes(self, name: str) -> tuple[np.ndarray, list[str]]:
        """A string column as (codes, values); null -> -1."""
        col = self.table.column(name).combine_chunks().dictionary_encode()
        codes = col.indices.to_numpy(zero_copy_only=False)
        codes = np.where(np.asarray(col.indices.is_null()), -1, np.nan_to_num(codes, nan=-1))
        return codes.astype(np.int64), [str(v) for v in col.dictionary.to_pylist()]

    def mask(self, name: str, value: str) -> np.ndarray:
        """Rows whose string column ``name`` equals ``value``."""
        if self.rows == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(pc.fill_null(pc.equal(self.table.column(name), value), False))

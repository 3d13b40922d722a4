"""Columns: a results table's columns read back as numpy arrays (the summary's input)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from disagg.experiments.results.columns import Columns
from disagg.experiments.results.tables import series_table


def _table() -> pa.Table:
    return pa.table({
        "status": pa.array(["failed", None, "completed", "failed", "completed"], pa.string()),
        "slo_met": pa.array([True, None, False, True, None], pa.bool_()),
        "ttft_s": pa.array([0.5, None, 1.25, 2.0, 3.0], pa.float64()),
        "tokens": pa.array([3, 1, 4, 1, 5], pa.int64()),
    })


def test_strings_as_codes_in_order_of_first_appearance_and_masks() -> None:
    cols = Columns(_table())
    codes, values = cols.codes("status")
    assert values == ["failed", "completed"]  # first seen order, as Arrow's dictionary has them
    assert codes.tolist() == [0, -1, 1, 0, 1] and codes.dtype == np.int64
    assert cols.mask("status", "completed").tolist() == [False, False, True, False, True]
    assert cols.mask("status", "cancelled").tolist() == [False] * 5
    assert cols.mask("status", "failed").dtype == bool


def test_numbers_and_booleans_as_float64_with_nulls_as_nan() -> None:
    cols = Columns(_table())
    np.testing.assert_array_equal(cols.num("slo_met"), [1.0, np.nan, 0.0, 1.0, np.nan])
    np.testing.assert_array_equal(cols.num("ttft_s"), [0.5, np.nan, 1.25, 2.0, 3.0])
    assert cols.num("tokens").tolist() == [3.0, 1.0, 4.0, 1.0, 5.0]
    assert np.isnan(cols.num("not_a_column")).all() and len(cols.num("not_a_column")) == 5
    for name in ("slo_met", "ttft_s", "tokens"):
        assert cols.num(name).dtype == np.float64


def test_a_dictionary_column_masks_as_its_strings() -> None:
    """A string column read as an Arrow dictionary (codes into a few values, one value twice,
    a null row) gives the rows its strings would."""
    codes = pa.array([1, 0, None, 3, 1], pa.int32())
    kinds = pa.DictionaryArray.from_arrays(codes, pa.array(["prefill", "link", "decode", "link"]))
    cols = Columns(pa.table({"kind": kinds}))
    assert cols.mask("kind", "link").tolist() == [True, False, False, True, True]
    assert cols.mask("kind", "prefill").tolist() == [False, True, False, False, False]
    assert cols.mask("kind", "gpu").tolist() == [False] * 5


def test_empty_table() -> None:
    cols = Columns(_table().slice(0, 0))
    assert cols.mask("status", "completed").tolist() == []
    codes, values = cols.codes("status")
    assert codes.tolist() == [] and values == []


def _unit(name: str, kind: str, busy: list[float]) -> dict[str, object]:
    n = len(busy)
    return {"entity": name, "kind": kind, "step_s": 0.5, "first_bin": 0, "busy": busy,
            "queue_depth": [0.0] * n, "batch_size": [1.0] * n, "kv_used_bytes": [0.0] * n,
            "tokens": [0.0] * n}


def test_series_labels_repeat_over_their_bins() -> None:
    series = [_unit("decode-0", "decode", [0.1, 0.2]), _unit("prefill-9", "prefill", []),
              _unit("prefill-1", "prefill", [0.3])]  # a series with no bins gives no rows
    table = series_table(series)
    assert table.column("entity").to_pylist() == ["decode-0", "decode-0", "prefill-1"]
    assert table.column("kind").to_pylist() == ["decode", "decode", "prefill"]
    assert table.column("time_s").to_pylist() == [0.0, 0.5, 0.0]
    assert table.schema.field("entity").type == pa.string()
    assert series_table([]).num_rows == 0

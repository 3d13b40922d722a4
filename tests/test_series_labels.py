"""timeseries.parquet's label columns (entity, kind) are built from Arrow buffers: they must be
the very string arrays a per-row conversion gives."""

from __future__ import annotations

import pyarrow as pa

from disagg.experiments.results.tables import _repeated, series_table


def test_repeated_labels_are_the_strings_repeated_in_order() -> None:
    labels, counts = ["prefill-0", "", "décode-1", "link"], [2, 3, 0, 1]
    expected = ["prefill-0", "prefill-0", "", "", "", "link"]
    got = _repeated(labels, counts)
    got.validate(full=True)
    assert got.type == pa.string() and got.null_count == 0
    assert got.equals(pa.array(expected, pa.string()))
    assert _repeated([], []).equals(pa.array([], pa.string()))


def test_a_series_tables_labels_repeat_over_each_series_bins() -> None:
    unit = {"entity": "decode-0", "kind": "decode", "step_s": 0.5, "first_bin": 2,
            "busy": [0.25, 0.5], "tokens": [1.0, 2.0], "queue_depth": [0.0, 1.0],
            "batch_size": [1.0, 1.0], "kv_used_bytes": [8.0, 8.0]}
    link = {"entity": "prefill-host-0->decode-host-0", "kind": "link", "step_s": 0.5,
            "first_bin": 0, "bytes": [5.0], "flows": [1.0], "capacity": 20.0}
    table = series_table([unit, {**unit, "busy": []}, link])
    assert table.column("entity").to_pylist() == ["decode-0", "decode-0",
                                                  "prefill-host-0->decode-host-0"]
    assert table.column("kind").to_pylist() == ["decode", "decode", "link"]
    assert table.column("time_s").to_pylist() == [1.0, 1.5, 0.0]

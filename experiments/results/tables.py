"""The results contract's tables (docs/design.md, "The results contract") from folded rows and sampled histories.

``requests_table`` and ``transfers_table`` turn rows (folded by the collector from the
components' records, ``cluster/records.py``) into Arrow tables, one row group per drain;
``timeseries_table`` lays the units' and links' per-bin histories (``cluster/timeseries.py``)
onto the run's grid.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pyarrow as pa

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.config import Experiment
from disagg.cluster.facts import experiment_faults
from disagg.experiments.results.columns import by_name

REQUEST_COLUMNS = [
    "request_id", "slo_class", "arrival_s", "prompt_tokens", "output_tokens", "status", "reason",
    "prefill_unit", "prefill_start_s", "first_token_s", "decode_unit", "kv_bytes",
    "transfer_start_s", "transfer_end_s", "decode_start_s", "last_token_s", "ttft_s", "tpot_s",
    "e2e_s", "slo_met", "ttft_slo_s", "tpot_slo_s", "prefill_view_age_s", "decode_view_age_s",
    "attempts", "end_s", "preemptions",
]
_STRINGS = {"slo_class", "status", "reason", "prefill_unit", "decode_unit", "redone_from"}
_INTS = {"request_id", "prompt_tokens", "output_tokens", "attempts", "cached_tokens",
         "preemptions"}
PREFIX_COLUMNS = ["cached_tokens"]  # only with prefix caching on (prompt tokens served from cache)
REDONE_COLUMNS = ["redone_from"]  # only when the fault schedule loses a unit


def request_columns(exp: Experiment) -> list[str]:
    """requests.parquet's columns for ``exp``: ``REQUEST_COLUMNS``, with prefix caching on also
    ``PREFIX_COLUMNS``, and when a unit may be lost (requests redone) also ``REDONE_COLUMNS``:
    when its fault schedule loses one, and always on the ray engine, where a unit's actor can
    die of an outside cause (a ``kill -9``, its node going away). Fixed before the run, as rows
    stream into the file."""
    extra = PREFIX_COLUMNS if exp.prefix_cache.enabled else []
    if exp.experiment.engine == "ray" or any(a.action == "kill"
                                             for a in experiment_faults(exp).actions):
        extra = [*extra, *REDONE_COLUMNS]
    return [*REQUEST_COLUMNS, *extra]


def requests_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    """requests.parquet: one row per submitted request (missing values are null); ``columns``
    (``request_columns(exp)``) or ``REQUEST_COLUMNS``. Arrow converts the rows in one call;
    rows it refuses as they are (a string column's non-string, a float column's integer beyond
    2**53) have their values made ``str`` and ``float`` first."""
    schema = pa.schema([(c, _request_type(c)) for c in columns or REQUEST_COLUMNS])
    try:
        return _from_dicts(rows, schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.table({f.name: _converted(f.name, [r.get(f.name) for r in rows], f.type)
                         for f in schema})


def _request_type(column: str) -> pa.DataType:
    if column in _STRINGS:
        return pa.string()
    if column in _INTS:
        return pa.int64()
    return pa.bool_() if column == "slo_met" else pa.float64()


def _converted(column: str, values: list[Any], kind: pa.DataType) -> pa.Array:
    if column in _STRINGS:
        return pa.array([None if v is None else str(v) for v in values], kind)
    if kind == pa.float64():
        return pa.array([None if v is None else float(v) for v in values], kind)
    return pa.array(values, kind)


def _from_dicts(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table of ``schema``'s columns from dict rows (a missing key is null), converted by
    Arrow in one call rather than cell by cell."""
    return pa.Table.from_arrays(pa.array(rows, pa.struct(list(schema))).flatten(), schema=schema)


def grid(end_s: float, step_s: float) -> np.ndarray:
    """Sample times step, 2 step, ... covering [0, end_s]."""
    n = max(1, math.ceil(end_s / step_s - TIME_EPS_S))
    return step_s * np.arange(1, n + 1, dtype=np.float64)


TIMESERIES_COLUMNS = ["time_s", "entity", "kind", "queue_depth", "batch_size", "kv_used_bytes",
                      "busy_fraction", "tokens_per_s", "throughput_bytes_per_s", "active_flows",
                      "utilization"]


def series_table(series: list[dict[str, Any]]) -> pa.Table:
    """timeseries.parquet rows from per-bin series of units and links (as components hand
    them out, ``Component.drain_series``, or as :func:`final_series` samples what is left)."""
    kept = [s for s in series if len(s["busy" if "busy" in s else "bytes"])]
    frames = [_frame(s) for s in kept]
    cols: dict[str, pa.Array] = {}
    for c in TIMESERIES_COLUMNS:
        if c in _LABELS:  # one string per series, repeated over its bins
            cols[c] = _repeated([s[c] for s in kept], [len(f["time_s"]) for f in frames])
        else:
            cols[c] = pa.array(np.concatenate([f[c] for f in frames]) if frames
                               else np.zeros(0, dtype=np.float64), pa.float64())
    return pa.table(cols)


_LABELS = ("entity", "kind")
_MAX_STRING_BYTES = 2**31 - 1  # an Arrow string array's data, addressed by int32 offsets


def _repeated(labels: list[str], counts: list[int]) -> pa.Array:
    """A string array holding each of ``labels`` ``counts`` times in a row, built from its
    buffers (offsets by numpy, data by bytes repetition): ~6x cheaper than converting one
    Python string per row, and without Arrow's dictionary decoding or take, which would import
    pyarrow.compute (~30 ms CPU). The same array as ``pa.array`` of the repeated strings."""
    encoded = [label.encode() for label in labels]
    sizes = np.repeat(np.array([len(b) for b in encoded], dtype=np.int64), counts)
    if sizes.sum() > _MAX_STRING_BYTES:
        return pa.array(np.repeat(np.array(labels, dtype=object), counts), pa.string())
    offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    data = b"".join(b * n for b, n in zip(encoded, counts, strict=True))
    return pa.StringArray.from_buffers(len(sizes), pa.py_buffer(offsets), pa.py_buffer(data))


def _frame(s: dict[str, Any]) -> dict[str, np.ndarray]:
    """The numeric columns of one series' bins."""
    step = s["step_s"]
    n = len(s["busy"] if "busy" in s else s["bytes"])
    nan = np.full(n, np.nan)
    out = {"time_s": step * np.arange(s["first_bin"], s["first_bin"] + n, dtype=np.float64)}
    if s["kind"] == "link":
        tput = np.asarray(s["bytes"]) / step
        out.update(queue_depth=nan, batch_size=nan, kv_used_bytes=nan, busy_fraction=nan,
                   tokens_per_s=nan, throughput_bytes_per_s=tput, active_flows=s["flows"],
                   utilization=tput / s["capacity"])
        return out
    busy = np.clip(np.asarray(s["busy"]) / step, 0.0, 1.0)
    out.update(queue_depth=s["queue_depth"], batch_size=s["batch_size"],
               kv_used_bytes=s["kv_used_bytes"], busy_fraction=busy,
               tokens_per_s=np.asarray(s["tokens"]) / step, throughput_bytes_per_s=nan,
               active_flows=nan, utilization=busy)
    return out


def final_series(raw: dict[str, Any], exp: Experiment, end_s: float) -> list[dict[str, Any]]:
    """What the components still hold of their histories, sampled up to the grid's end (the
    bins covering [0, end_s]); the current link rates run on to it."""
    step = exp.output.sample_interval_s
    n = len(grid(end_s, step))
    out = []
    for name, comp in by_name(raw).items():
        if "log" in comp:
            out.append({"entity": name, "kind": comp["unit"]["kind"],
                        **comp["log"]["window"].series(n)})
    fabric = by_name(raw).get("fabric")
    if fabric is not None:
        state = fabric["link_state"]
        for link, cap in fabric["capacity"].items():
            carried = copy.deepcopy(state["bytes"][link])
            since, rate = state["rate"][link]
            carried.interval(since, step * n, rate)
            out.append({"entity": link, "kind": "link", "step_s": step,
                        "first_bin": state["flows"][link].base, "bytes": carried.per_bin(n),
                        "flows": state["flows"][link].sampled(n)[0], "capacity": cap})
    return out


TRANSFER_COLUMNS = ["request_id", "src_unit", "dst_unit", "src_host", "dst_host", "modeled_bytes",
                    "real_bytes", "start_s", "modeled_end_s", "real_end_s", "src_node", "dst_node",
                    "crosses_nodes", "attempt"]


def transfers_table(rows: list[dict[str, Any]]) -> pa.Table:
    """transfers.parquet: one row per KV transfer."""
    types = {"request_id": pa.int64(), "src_unit": pa.string(), "dst_unit": pa.string(),
             "src_host": pa.string(), "dst_host": pa.string(), "real_bytes": pa.int64(),
             "src_node": pa.string(), "dst_node": pa.string(), "crosses_nodes": pa.bool_(),
             "attempt": pa.int64()}
    return _from_dicts(rows, pa.schema([(c, types.get(c, pa.float64())) for c in TRANSFER_COLUMNS]))

"""The results contract's tables (DESIGN.md, Results) from folded rows and sampled histories.

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
from disagg.experiments.results.columns import by_name

REQUEST_COLUMNS = [
    "request_id", "slo_class", "arrival_s", "prompt_tokens", "output_tokens", "status", "reason",
    "prefill_unit", "prefill_start_s", "first_token_s", "decode_unit", "kv_bytes",
    "transfer_start_s", "transfer_end_s", "decode_start_s", "last_token_s", "ttft_s", "tpot_s",
    "e2e_s", "slo_met", "ttft_slo_s", "tpot_slo_s", "prefill_view_age_s", "decode_view_age_s",
    "attempts", "end_s",
]
_STRINGS = {"slo_class", "status", "reason", "prefill_unit", "decode_unit"}
_INTS = {"request_id", "prompt_tokens", "output_tokens", "attempts"}


def requests_table(rows: list[dict[str, Any]]) -> pa.Table:
    """requests.parquet: one row per submitted request (missing values are null)."""
    cols: dict[str, pa.Array] = {}
    for c in REQUEST_COLUMNS:
        values = [r.get(c) for r in rows]
        if c in _STRINGS:
            cols[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
        elif c in _INTS:
            cols[c] = pa.array(values, pa.int64())
        elif c == "slo_met":
            cols[c] = pa.array(values, pa.bool_())
        else:
            cols[c] = pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.table(cols)


def grid(end_s: float, step_s: float) -> np.ndarray:
    """Sample times step, 2 step, ... covering [0, end_s]."""
    n = max(1, math.ceil(end_s / step_s - TIME_EPS_S))
    return step_s * np.arange(1, n + 1, dtype=np.float64)


def _fit(values: np.ndarray, n: int, carry: bool) -> np.ndarray:
    """``values`` cut or padded to n bins (padding carries the last value, or is 0)."""
    v = np.asarray(values, dtype=np.float64)[:n]
    pad = (v[-1] if len(v) else 0.0) if carry else 0.0
    return np.concatenate((v, np.full(n - len(v), pad)))


def timeseries_table(raw: dict[str, Any], exp: Experiment, end_s: float) -> pa.Table:
    """timeseries.parquet: per unit and per fabric link, sampled every ``sample_interval_s``."""
    step = exp.output.sample_interval_s
    g = grid(end_s, step)
    frames: list[dict[str, Any]] = []
    for name, comp in by_name(raw).items():
        if "log" in comp:
            frames.append(_unit_frame(name, comp["unit"]["kind"], comp["log"], g, step))
    fabric = by_name(raw).get("fabric")
    if fabric is not None:
        frames.extend(_link_frames(fabric, g, step))
    if not frames:
        return pa.table({"time_s": pa.array([], pa.float64())})
    keys = list(frames[0])
    return pa.table({k: pa.array(np.concatenate([f[k] for f in frames])) for k in keys})


def _unit_frame(name: str, kind: str, log: dict[str, Any], g: np.ndarray,
                step: float) -> dict[str, Any]:
    n = len(g)
    busy = np.clip(_fit(log["busy"], n, False) / step, 0.0, 1.0)
    return {
        "time_s": g, "entity": np.array([name] * n, dtype=object),
        "kind": np.array([kind] * n, dtype=object),
        "queue_depth": _fit(log["queue_depth"], n, True),
        "batch_size": _fit(log["batch_size"], n, True),
        "kv_used_bytes": _fit(log["kv_used_bytes"], n, True),
        "busy_fraction": busy,
        "tokens_per_s": _fit(log["tokens"], n, False) / step,
        "throughput_bytes_per_s": np.full(n, np.nan), "active_flows": np.full(n, np.nan),
        "utilization": busy,
    }


def _link_frames(fabric: dict[str, Any], g: np.ndarray, step: float) -> list[dict[str, Any]]:
    frames = []
    n = len(g)
    state = fabric["link_state"]
    for link, cap in fabric["capacity"].items():
        if link in state["flows"]:
            since, rate = state["rate"][link]
            carried = copy.deepcopy(state["bytes"][link])
            carried.interval(since, step * n, rate)  # the last rate runs on to the grid's end
            tput = carried.per_bin(n) / step
            flows = state["flows"][link].sampled(n)[0]
        else:
            tput, flows = np.zeros(n), np.zeros(n)
        frames.append({
            "time_s": g, "entity": np.array([link] * n, dtype=object),
            "kind": np.array(["link"] * n, dtype=object),
            "queue_depth": np.full(n, np.nan), "batch_size": np.full(n, np.nan),
            "kv_used_bytes": np.full(n, np.nan), "busy_fraction": np.full(n, np.nan),
            "tokens_per_s": np.full(n, np.nan), "throughput_bytes_per_s": tput,
            "active_flows": flows, "utilization": tput / cap,
        })
    return frames


TRANSFER_COLUMNS = ["request_id", "src_unit", "dst_unit", "src_host", "dst_host", "modeled_bytes",
                    "real_bytes", "start_s", "modeled_end_s", "real_end_s", "src_node", "dst_node",
                    "crosses_nodes", "attempt"]


def transfers_table(rows: list[dict[str, Any]]) -> pa.Table:
    """transfers.parquet: one row per KV transfer."""
    types = {"request_id": pa.int64(), "src_unit": pa.string(), "dst_unit": pa.string(),
             "src_host": pa.string(), "dst_host": pa.string(), "real_bytes": pa.int64(),
             "src_node": pa.string(), "dst_node": pa.string(), "crosses_nodes": pa.bool_(),
             "attempt": pa.int64()}
    return pa.table({
        c: pa.array([r.get(c) for r in rows], types.get(c, pa.float64())) for c in TRANSFER_COLUMNS
    })

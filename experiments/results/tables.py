"""Turn the components' raw results into the results contract's tables (DESIGN.md, Results).

``requests_table`` merges each request's fragments (load generator, router, prefill, fabric,
decode, collector) into one row; ``timeseries_table`` resamples unit and link histories onto a
fixed grid; ``transfers_table`` lists KV transfers with modeled and real times.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from disagg.cluster.config import Experiment

REQUEST_COLUMNS = [
    "request_id", "slo_class", "arrival_s", "prompt_tokens", "output_tokens", "status", "reason",
    "prefill_unit", "prefill_start_s", "first_token_s", "decode_unit", "kv_bytes",
    "transfer_start_s", "transfer_end_s", "decode_start_s", "last_token_s", "ttft_s", "tpot_s",
    "e2e_s", "slo_met", "ttft_slo_s", "tpot_slo_s", "prefill_view_age_s", "decode_view_age_s",
]
_STRINGS = {"slo_class", "status", "reason", "prefill_unit", "decode_unit", "redone_from"}
_INTS = {"request_id", "prompt_tokens", "output_tokens", "cached_tokens"}
PREFIX_COLUMNS = ["cached_tokens"]  # only with prefix caching on (prompt tokens served from cache)


def by_name(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Component results keyed by component name."""
    return {c["name"]: c for c in raw["components"]}


def request_rows(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One merged dict per submitted request, with derived latencies and SLO verdicts."""
    comps = by_name(raw)
    rows: dict[int, dict[str, Any]] = {
        rid: {"request_id": rid, **base} for rid, base in comps["loadgen"]["requests"].items()
    }
    for name, comp in comps.items():
        if name == "loadgen":
            continue
        for rid, frag in comp.get("requests", {}).items():
            if rid in rows:
                rows[rid].update({k: v for k, v in frag.items() if k != "real_bytes"})
    unfinished = raw.get("unfinished") or {"status": "failed",
                                           "reason": "unfinished_at_drain_deadline"}
    _mark_redone(rows, comps.get("collector", {}).get("redone", {}))
    for row in rows.values():
        _derive(row, unfinished)
    return [rows[rid] for rid in sorted(rows)]


def _mark_redone(rows: dict[int, dict[str, Any]], redone: dict[int, str]) -> None:
    """``redone_from``: the lost unit a redone request started again from (only when any was)."""
    if redone:
        for rid, row in rows.items():
            row["redone_from"] = redone.get(rid)


def _derive(row: dict[str, Any], unfinished: dict[str, str]) -> None:
    """Fill status (requests without an end get ``unfinished``'s), latencies and the SLO verdict."""
    if "status" not in row:
        row["status"], row["reason"] = unfinished["status"], unfinished["reason"]
    if row["status"] == "completed" and row.get("first_token_s") is None:
        row["first_token_s"] = row.get("end_s")  # a one-token output whose prefill unit was lost
    if row["status"] == "completed" and row.get("last_token_s") is None:
        # one-token outputs end at prefill; a lost unit's records are gone but the end time stands
        row["last_token_s"] = row.get("end_s") or row.get("first_token_s")
    if row["status"] != "completed":
        row["slo_met"] = False
        return
    row["ttft_s"] = row["first_token_s"] - row["arrival_s"]
    row["e2e_s"] = row["last_token_s"] - row["arrival_s"]
    decode_tokens = row["output_tokens"] - 1
    row["tpot_s"] = (row["last_token_s"] - row["first_token_s"]) / decode_tokens if decode_tokens else 0.0
    row["slo_met"] = bool(
        row["ttft_s"] <= row["ttft_slo_s"] + 1e-12 and row["tpot_s"] <= row["tpot_slo_s"] + 1e-12
    )


def requests_table(rows: list[dict[str, Any]]) -> pa.Table:
    """requests.parquet: one row per submitted request (missing values are null); with prefix
    caching on (a prefill unit recorded ``cached_tokens``), also ``PREFIX_COLUMNS``; a run in which
    a lost unit made requests start again has a ``redone_from`` column too."""
    cols: dict[str, pa.Array] = {}
    extra = PREFIX_COLUMNS if any("cached_tokens" in r for r in rows) else []
    extra += ["redone_from"] if any("redone_from" in r for r in rows) else []
    for c in [*REQUEST_COLUMNS, *extra]:
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


def step_integral(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Integral from 0 to each query time of a step function that is ``values[i]`` from
    ``times[i]`` until the next change (0 before the first)."""
    if len(times) == 0:
        return np.zeros(len(query))
    order = np.argsort(times, kind="stable")
    t, v = times[order], values[order]
    area = np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(t))))
    idx = np.searchsorted(t, query, side="right") - 1
    out = np.where(idx >= 0, area[np.maximum(idx, 0)] + v[np.maximum(idx, 0)] * (query - t[np.maximum(idx, 0)]), 0.0)
    return out


def step_value(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Value at each query time of the step function (0 before the first change)."""
    if len(times) == 0:
        return np.zeros(len(query))
    order = np.argsort(times, kind="stable")
    idx = np.searchsorted(times[order], query, side="right") - 1
    return np.where(idx >= 0, values[order][np.maximum(idx, 0)], 0.0)


def _busy_step(busy: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    times = np.array([t for s, e in busy for t in (s, e)], dtype=np.float64)
    values = np.array([v for _ in busy for v in (1.0, 0.0)], dtype=np.float64)
    return times, values


def grid(end_s: float, step_s: float) -> np.ndarray:
    """Sample times step, 2 step, ... covering [0, end_s]."""
    n = max(1, math.ceil(end_s / step_s - 1e-9))
    return step_s * np.arange(1, n + 1, dtype=np.float64)


def timeseries_table(raw: dict[str, Any], exp: Experiment, end_s: float) -> pa.Table:
    """timeseries.parquet: per unit and per fabric link, sampled every ``sample_interval_s``."""
    step = exp.output.sample_interval_s
    g = grid(end_s, step)
    frames: list[dict[str, Any]] = []
    for name, comp in by_name(raw).items():
        if "log" in comp:
            frames.append(_unit_frame(name, comp["log"], g, step))
    fabric = by_name(raw).get("fabric")
    if fabric is not None:
        frames.extend(_link_frames(fabric, g, step))
    if not frames:
        return pa.table({"time_s": pa.array([], pa.float64())})
    keys = list(frames[0])
    return pa.table({k: pa.array(np.concatenate([f[k] for f in frames]).tolist()) for k in keys})


def _unit_frame(name: str, log: dict[str, Any], g: np.ndarray, step: float) -> dict[str, Any]:
    ch = np.array(log["changes"], dtype=np.float64).reshape(-1, 4)
    bt, bv = _busy_step(log["busy"])
    busy = (step_integral(bt, bv, g) - step_integral(bt, bv, g - step)) / step
    tok = np.array(log["tokens"], dtype=np.float64).reshape(-1, 3)
    order = np.argsort(tok[:, 1], kind="stable")  # tokens count when their work ends
    ends, cum = tok[order, 1], np.concatenate(([0.0], np.cumsum(tok[order, 2])))
    tok_done = cum[np.searchsorted(ends, np.concatenate(([0.0], g)), side="right")]
    n = len(g)
    return {
        "time_s": g, "entity": np.array([name] * n, dtype=object),
        "kind": np.array([name.split("-")[0]] * n, dtype=object),
        "queue_depth": step_value(ch[:, 0], ch[:, 1], g),
        "batch_size": step_value(ch[:, 0], ch[:, 2], g),
        "kv_used_bytes": step_value(ch[:, 0], ch[:, 3], g),
        "busy_fraction": np.clip(busy, 0.0, 1.0),
        "tokens_per_s": np.diff(tok_done) / step,
        "throughput_bytes_per_s": np.full(n, np.nan), "active_flows": np.full(n, np.nan),
        "utilization": np.clip(busy, 0.0, 1.0),
    }


def _link_frames(fabric: dict[str, Any], g: np.ndarray, step: float) -> list[dict[str, Any]]:
    frames = []
    n = len(g)
    for link, cap in fabric["capacity"].items():
        rows = [r for r in fabric["link_log"] if r[1] == link]
        t = np.array([r[0] for r in rows], dtype=np.float64)
        rate = np.array([r[2] for r in rows], dtype=np.float64)
        flows = np.array([r[3] for r in rows], dtype=np.float64)
        tput = (step_integral(t, rate, g) - step_integral(t, rate, g - step)) / step
        frames.append({
            "time_s": g, "entity": np.array([link] * n, dtype=object),
            "kind": np.array(["link"] * n, dtype=object),
            "queue_depth": np.full(n, np.nan), "batch_size": np.full(n, np.nan),
            "kv_used_bytes": np.full(n, np.nan), "busy_fraction": np.full(n, np.nan),
            "tokens_per_s": np.full(n, np.nan), "throughput_bytes_per_s": tput,
            "active_flows": step_value(t, flows, g), "utilization": tput / cap,
        })
    return frames


def transfer_rows(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per KV transfer, joined with the real bytes and real arrival at the decode unit."""
    comps = by_name(raw)
    fabric = comps.get("fabric", {"transfers": []})
    decode_recs: dict[int, dict[str, Any]] = {}
    for name, comp in comps.items():
        if name.startswith("decode-"):  # colocated units move no KV
            decode_recs.update(comp["requests"])
    node = {n: p["node_id"] for n, p in raw.get("placement", {}).items()}
    rows = []
    for t in fabric["transfers"]:
        rec = decode_recs.get(t["request_id"], {})
        src, dst = node.get(t["src_unit"]), node.get(t["dst_unit"])
        rows.append({**t, "real_bytes": rec.get("real_bytes"), "real_end_s": rec.get("real_end_s"),
                     "src_node": src, "dst_node": dst,
                     "crosses_nodes": None if src is None or dst is None else src != dst})
    return rows


TRANSFER_COLUMNS = ["request_id", "src_unit", "dst_unit", "src_host", "dst_host", "modeled_bytes",
                    "real_bytes", "start_s", "modeled_end_s", "real_end_s", "src_node", "dst_node",
                    "crosses_nodes"]


def transfers_table(rows: list[dict[str, Any]]) -> pa.Table:
    """transfers.parquet: one row per KV transfer."""
    types = {"request_id": pa.int64(), "src_unit": pa.string(), "dst_unit": pa.string(),
             "src_host": pa.string(), "dst_host": pa.string(), "real_bytes": pa.int64(),
             "src_node": pa.string(), "dst_node": pa.string(), "crosses_nodes": pa.bool_()}
    return pa.table({
        c: pa.array([r.get(c) for r in rows], types.get(c, pa.float64())) for c in TRANSFER_COLUMNS
    })

"""summary.json: one run's headline metrics.

Keys follow vLLM's ``bench serve`` results where the concept is the same (``mean_ttft_ms``,
``p99_itl_ms``, ``output_throughput``, ``request_goodput``, ...) and add the emulator's own
(``engine``, ``lag_p99_ms``, utilization per pool, cost per million tokens, fabric figures).

Computed from the written columns of ``requests.parquet`` and ``transfers.parquet`` (exact
percentiles), and for lag and inter-token latency from the components' mergeable sketches
(``cluster/sketch.py``: exact up to 65,536 values, within 0.5 % beyond).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from disagg.cluster.config import Experiment
from disagg.cluster.hardware.perf import peak_flops, prefill_flops
from disagg.cluster.sketch import QuantileSketch
from disagg.experiments.results.columns import Columns, busy_until, by_name, units_of

PERCENTILES = (50, 90, 99)


def _stats(prefix: str, values_s: Any, weights: Any = None) -> dict[str, Any]:
    """mean / median / p90 / p99 in milliseconds (None when there are no values)."""
    v = np.asarray(values_s, dtype=np.float64) * 1e3
    out: dict[str, Any] = {}
    if len(v) == 0:
        out[f"mean_{prefix}_ms"] = out[f"median_{prefix}_ms"] = None
        out.update({f"p{p}_{prefix}_ms": None for p in PERCENTILES if p != 50})
        return out
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out[f"mean_{prefix}_ms"] = float(np.average(v, weights=w))
    qs = _weighted_quantiles(v, w, [p / 100 for p in PERCENTILES])
    out[f"median_{prefix}_ms"] = qs[0]
    out.update({f"p{p}_{prefix}_ms": q for p, q in zip(PERCENTILES[1:], qs[1:], strict=True)})
    return out


def _weighted_quantiles(v: np.ndarray, w: np.ndarray | None, qs: list[float]) -> list[float]:
    if w is None:
        return [float(x) for x in np.quantile(v, qs)]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    cum /= cum[-1]
    ordered = v[order]
    return [float(ordered[min(int(np.searchsorted(cum, q)), len(v) - 1)]) for q in qs]


def utilization(raw: dict[str, Any], kind: str, end_s: float) -> float | None:
    """Mean busy fraction over [0, end_s] of a pool's units."""
    if end_s <= 0:
        return None
    fractions = [busy_until(c["log"], end_s) / end_s for c in units_of(raw, kind)]
    return float(np.mean(fractions)) if fractions else None


def _prefill_mfu(exp: Experiment, raw: dict[str, Any], cols: Columns) -> float | None:
    """Model FLOPs of the prefills done / (busy seconds x chips x peak): how well busy prefill
    time was used (batching small prompts raises it when the weights read dominates)."""
    busy = sum(c["log"]["busy_s"] for c in units_of(raw, "prefill"))
    if busy <= 0:
        return None
    prompts = cols.num("prompt_tokens")[~np.isnan(cols.num("first_token_s"))]
    flops = float(sum(prefill_flops([int(p)], exp.model) for p in prompts))
    hw = exp.prefill.hardware
    return flops / (busy * exp.prefill.chips_per_unit * peak_flops(hw, exp.model))


def _costs(exp: Experiment, end_s: float, tokens: int) -> dict[str, Any]:
    hours = end_s / 3600
    prices = [p.price_per_unit_hour_usd for p in (exp.prefill, exp.decode)]
    powers = [p.hardware.power_w for p in (exp.prefill, exp.decode)]
    out: dict[str, Any] = {"cost_per_million_tokens": None, "energy_per_token_j": None}
    pools = (exp.prefill, exp.decode)
    if tokens and prices[0] is not None and prices[1] is not None:
        dollars = pools[0].units * prices[0] * hours + pools[1].units * prices[1] * hours
        out["cost_per_million_tokens"] = dollars / tokens * 1e6
        out["cost_usd"] = dollars
    if tokens and powers[0] is not None and powers[1] is not None:
        joules = sum(pool.units * pool.chips_per_unit * w * end_s
                     for pool, w in zip(pools, (powers[0], powers[1]), strict=True))
        out["energy_per_token_j"] = joules / tokens
    return out


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 (nulls as nan)."""
    return Columns(table).num(name)


def _fabric(transfers: pa.Table, timeseries: pa.Table) -> dict[str, Any]:
    start = _floats(transfers, "start_s")
    durations = _floats(transfers, "modeled_end_s") - start
    out: dict[str, Any] = {"fabric_bytes": float(_floats(transfers, "modeled_bytes").sum())}
    out.update({f"p{p}_transfer_ms": (float(np.percentile(durations, p)) * 1e3
                                      if len(durations) else None) for p in (50, 99)})
    # the per-link utilization the timeseries already sampled, not a second resampling
    ts = Columns(timeseries)
    use = ts.num("utilization")[ts.mask("kind", "link")] if "kind" in timeseries.column_names \
        else np.zeros(0)
    use = use[~np.isnan(use)]
    out["peak_link_utilization"] = float(use.max()) if len(use) else 0.0
    return out


def makespan(cols: Columns) -> float:
    """Emu seconds from 0 to the last completion (or the last arrival, if later)."""
    done = cols.num("last_token_s")[cols.mask("status", "completed")]
    both = np.concatenate((done, cols.num("arrival_s")))
    return float(both.max()) if len(both) else 0.0


def summarize(exp: Experiment, raw: dict[str, Any], requests: pa.Table, transfers: pa.Table,
              timeseries: pa.Table) -> dict[str, Any]:
    """The summary.json dict for one run, from the written columns of ``requests.parquet`` and
    ``transfers.parquet`` and the components' running aggregates (lag and ITL sketches)."""
    cols = Columns(requests)
    done = cols.mask("status", "completed")
    end_s = makespan(cols)
    n = cols.rows
    tokens = int(cols.num("output_tokens")[done].sum())
    good = int(cols.num("slo_met")[~np.isnan(cols.num("slo_met"))].sum())
    comps = by_name(raw)
    lags = QuantileSketch()
    for c in comps.values():
        lags.merge(QuantileSketch.from_state(c["lags"]))
    out: dict[str, Any] = {
        "experiment": exp.experiment.name, "engine": raw["engine"],
        "dilation": exp.experiment.dilation, "seed": exp.experiment.seed,
        "submitted": n, "completed": int(done.sum()),
        "rejected": int(cols.mask("status", "rejected").sum()),
        "failed": int(cols.mask("status", "failed").sum()),
        "duration_s": end_s, "total_input_tokens": int(cols.num("prompt_tokens")[done].sum()),
        "total_output_tokens": tokens,
        "request_throughput": int(done.sum()) / end_s if end_s else 0.0,
        "output_throughput": tokens / end_s if end_s else 0.0,
        "request_goodput": good / end_s if end_s else 0.0,
        "slo_attainment": good / n if n else None,
    }
    out.update(_latencies(cols, done))
    out.update(_sketch_stats("itl", _itl(comps)))
    out["prefill_utilization"] = utilization(raw, "prefill", end_s)
    out["prefill_busy_mfu"] = _prefill_mfu(exp, raw, cols)
    out["decode_utilization"] = utilization(raw, "decode", end_s)
    out.update(_costs(exp, end_s, tokens))
    out.update(_fabric(transfers, timeseries))
    lag_v, lag_w = lags.values()
    out["lag_p50_ms"] = _percentile(lag_v, lag_w, lags.exact, 50) * 1e3
    out["lag_p99_ms"] = _percentile(lag_v, lag_w, lags.exact, 99) * 1e3
    out["late_decisions"] = int(sum(c.get("late_decisions", 0) for c in comps.values()))
    out["retroactive_joins"] = int(sum(c.get("retroactive_joins", 0) for c in comps.values()))
    out["backdated_transfers"] = int(comps.get("fabric", {}).get("backdated", 0))
    ages = np.concatenate([cols.num(k) for k in ("prefill_view_age_s", "decode_view_age_s")])
    ages = ages[~np.isnan(ages)]
    out["view_age_p50_ms"] = float(np.percentile(ages, 50)) * 1e3 if len(ages) else None
    out["view_age_p99_ms"] = float(np.percentile(ages, 99)) * 1e3 if len(ages) else None
    out.update(_cluster(raw))
    out["reasons"] = _reasons(cols, done)
    out["by_slo_class"] = _by_class(cols, end_s)
    return out


def _latencies(cols: Columns, done: np.ndarray) -> dict[str, Any]:
    multi = done & (cols.num("output_tokens") > 1)
    out: dict[str, Any] = {}
    out.update(_stats("ttft", cols.num("ttft_s")[done]))
    out.update(_stats("tpot", cols.num("tpot_s")[multi]))
    out.update(_stats("e2el", cols.num("e2e_s")[done]))
    return out


def _percentile(v: np.ndarray, w: np.ndarray, exact: bool, p: float) -> float:
    """Percentile ``p`` of unweighted exact values, or of a bucketed sketch (0 if empty)."""
    if len(v) == 0:
        return 0.0
    if exact:
        return float(np.percentile(v, p))
    return _weighted_quantiles(v, w, [p / 100])[0]


def _sketch_stats(prefix: str, sketch: QuantileSketch) -> dict[str, Any]:
    """:func:`_stats` of a sketch: exact while it is, within its relative accuracy beyond."""
    v, w = sketch.values()
    out = _stats(prefix, v, w)
    if len(v) and not sketch.exact:
        out[f"mean_{prefix}_ms"] = float(sketch.mean() or 0.0) * 1e3
    return out


def _itl(comps: dict[str, dict[str, Any]]) -> QuantileSketch:
    """Inter-token latencies: decode step times weighted by batch size (each decode unit's
    sketch), plus each request's gap from its first token (prefill) to its first decode token
    (transfer and admission wait; the collector's sketch)."""
    itl = QuantileSketch()
    for comp in comps.values():
        if "itl" in comp:
            itl.merge(QuantileSketch.from_state(comp["itl"]))
    if "collector" in comps:
        itl.merge(QuantileSketch.from_state(comps["collector"]["itl_gaps"]))
    return itl


def _cluster(raw: dict[str, Any]) -> dict[str, Any]:
    """Where the components ran (ray engine), the clock alignment, and units lost mid-run."""
    clock = raw.get("clock", {})
    out: dict[str, Any] = {"lost_units": raw.get("lost_units", [])}
    if "placement" in raw:
        out["placement_mode"] = raw.get("placement_mode")
        out["placement"] = raw["placement"]
        out["nodes"] = len({p["node_id"] for p in raw["placement"].values()})
        out["clock_offsets_ms"] = {n: c["offset_ms"] for n, c in clock.items()}
        out["clock_uncertainty_ms"] = max((c["uncertainty_ms"] for c in clock.values()), default=0)
    return out


def _reasons(cols: Columns, done: np.ndarray) -> dict[str, int]:
    codes, names = cols.codes("reason")
    counts = np.bincount(codes[~done & (codes >= 0)], minlength=len(names))
    return {names[i]: int(c) for i, c in enumerate(counts) if c}


def _by_class(cols: Columns, end_s: float) -> dict[str, dict[str, Any]]:
    codes, names = cols.codes("slo_class")
    done_all = cols.mask("status", "completed")
    met = cols.num("slo_met") == 1
    out = {}
    for k in sorted(range(len(names)), key=lambda i: names[i]):
        mine = codes == k
        if not mine.any():
            continue
        done = mine & done_all
        good = int((mine & met).sum())
        entry = {"submitted": int(mine.sum()), "completed": int(done.sum()),
                 "slo_attainment": good / int(mine.sum()),
                 "request_goodput": good / end_s if end_s else 0.0}
        entry.update(_stats("ttft", cols.num("ttft_s")[done]))
        entry.update(_stats("tpot", cols.num("tpot_s")[done & (cols.num("output_tokens") > 1)]))
        out[names[k]] = entry
    return out

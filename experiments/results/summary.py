"""summary.json: one run's headline metrics.

Keys follow vLLM's ``bench serve`` results where the concept is the same (``mean_ttft_ms``,
``p99_itl_ms``, ``output_throughput``, ``request_goodput``, ...) and add the emulator's own
(``engine``, ``lag_p99_ms``, utilization per pool, cost per million tokens, fabric figures).

Computed from running aggregates of the written tables, read back batch by batch
(``aggregate.py``), and of the components (lag and inter-token latency sketches, busy time):
percentiles are exact up to 65,536 values per distribution and within 0.5 % beyond
(``cluster/sketch.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from disagg.cluster.config import Experiment
from disagg.cluster.facts import experiment_faults
from disagg.cluster.hardware.perf import peak_flops
from disagg.cluster.sketch import QuantileSketch
from disagg.experiments.results.aggregate import RequestAggregates, Tally, TransferAggregates
from disagg.experiments.results.columns import busy_until, by_name, units_of
from disagg.experiments.results.prefix import prefix_summary

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


def _prefill_mfu(exp: Experiment, raw: dict[str, Any], flops: float) -> float | None:
    """Model FLOPs of the prefills done / (busy seconds x chips x peak): how well busy prefill
    time was used (batching small prompts raises it when the weights read dominates)."""
    busy = sum(c["log"]["busy_s"] for c in units_of(raw, "prefill"))
    if busy <= 0 or exp.prefill is None:
        return None
    hw = exp.prefill.hardware
    return flops / (busy * exp.prefill.chips_per_unit * peak_flops(hw, exp.model))


def _costs(exp: Experiment, end_s: float, tokens: int) -> dict[str, Any]:
    """Dollars per million output tokens and joules per output token over the run's makespan,
    every unit of every pool counted as busy the whole time (price and power per hour of use)."""
    pools = list(exp.pools.values())
    prices = [p.price_per_unit_hour_usd for p in pools]
    powers = [p.power_per_unit_w for p in pools]
    out: dict[str, Any] = {"cost_per_million_tokens": None, "energy_per_token_j": None,
                           "cluster_price_per_hour_usd": None, "cluster_power_w": None}
    if None not in prices:
        per_hour = sum(pool.units * (p or 0.0) for pool, p in zip(pools, prices, strict=True))
        out["cluster_price_per_hour_usd"] = per_hour
        if tokens:
            out["cost_usd"] = per_hour * end_s / 3600
            out["cost_per_million_tokens"] = out["cost_usd"] / tokens * 1e6
    if None not in powers:
        watts = sum(pool.units * (w or 0.0) for pool, w in zip(pools, powers, strict=True))
        out["cluster_power_w"] = watts
        if tokens:
            out["energy_per_token_j"] = watts * end_s / tokens
    return out


def _fabric(tr: TransferAggregates) -> dict[str, Any]:
    out: dict[str, Any] = {"fabric_bytes": tr.bytes}
    p50, p99 = _percentiles(tr.durations, (50, 99)) if tr.durations.totals()[0] else (None, None)
    out.update(p50_transfer_ms=_ms(p50), p99_transfer_ms=_ms(p99))
    # the per-link utilization the timeseries already sampled, not a second resampling
    out["peak_link_utilization"] = tr.peak_link_utilization
    return out


def _counts(agg: RequestAggregates, end_s: float) -> dict[str, Any]:
    t = agg.all
    return {
        "submitted": t.submitted, "completed": t.completed,
        "rejected": agg.statuses["rejected"], "failed": agg.statuses["failed"],
        "cancelled": agg.statuses["cancelled"],
        "duration_s": end_s, "total_input_tokens": t.input_tokens,
        "total_output_tokens": t.output_tokens,
        "request_throughput": t.completed / end_s if end_s else 0.0,
        "output_throughput": t.output_tokens / end_s if end_s else 0.0,
        "request_goodput": t.good / end_s if end_s else 0.0,
        "slo_attainment": t.good / t.submitted if t.submitted else None,
    }


def summarize(exp: Experiment, raw: dict[str, Any], agg: RequestAggregates,
              tr: TransferAggregates) -> dict[str, Any]:
    """The summary.json dict for one run, from the aggregates of the written tables
    (``aggregate.py``) and the components' own (lag and ITL sketches, busy time)."""
    end_s = agg.makespan_s
    comps = by_name(raw)
    out: dict[str, Any] = {
        "experiment": exp.experiment.name, "engine": raw["engine"],
        "dilation": exp.experiment.dilation, "seed": exp.experiment.seed, **_counts(agg, end_s)}
    out.update(_latencies(agg.all))
    out.update(_sketch_stats("itl", _itl(comps), weighted=True))
    out.update(_faults_and_units(exp, raw, agg, end_s))
    out.update(_costs(exp, end_s, agg.all.output_tokens))
    out.update(_fabric(tr))
    out.update(_lag_and_gate(comps, agg))
    out.update(_cluster(raw))
    out.update(prefix_summary(raw, agg))
    out["reasons"] = {k: v for k, v in agg.reasons.items() if v}
    out["by_slo_class"] = _by_class(agg, end_s)
    if agg.slo is not None:  # percentile / slowdown targets: attainment and goodput follow them
        out.update(agg.slo.report(out["request_throughput"]))
        for name, entry in out["by_slo_class"].items():
            entry["slo_attainment"] = agg.slo.attainment(name)
    else:
        out["slo_definition"] = "per_request"
    return out


def _faults_and_units(exp: Experiment, raw: dict[str, Any], agg: RequestAggregates,
                      end_s: float) -> dict[str, Any]:
    """The run's faults (injected and KV), requests redone or preempted, and each pool's
    utilization (busy fraction of ``end_s``) and the prefill pool's MFU while busy."""
    return {
        "faults": [f"{text}" for _, text in raw.get("faults", [])]
        + experiment_faults(exp).describe_kv(agg.all.submitted),
        "redone": agg.redone,
        "preemptions": agg.preemptions,  # paged KV: requests' preemptions summed
        "prefill_utilization": utilization(raw, "prefill", end_s),
        "prefill_busy_mfu": _prefill_mfu(exp, raw, agg.prefill_flops),
        "decode_utilization": utilization(raw, "decode", end_s),
        "colocated_utilization": utilization(raw, "colocated", end_s),
    }


def _lag_and_gate(comps: dict[str, dict[str, Any]], agg: RequestAggregates) -> dict[str, Any]:
    """The emulator's own figures: lag p50 / p99 (ms), decisions and late ones, the time gate's
    corrections for inputs that came late (cluster/timegate.py), and the age of the router's
    view (ms; None without ages)."""
    lags = QuantileSketch()
    for c in comps.values():
        lags.merge(QuantileSketch.from_state(c["lags"]))
    lag_p50, lag_p99 = _percentiles(lags, (50, 99))
    age_p50, age_p99 = (_percentiles(agg.view_ages, (50, 99)) if agg.view_ages.totals()[0] > 0
                        else (None, None))
    return {
        "lag_p50_ms": lag_p50 * 1e3,
        "lag_p99_ms": lag_p99 * 1e3,
        "decisions": int(sum(c.get("decisions", 0) for c in comps.values())),
        "late_decisions": int(sum(c.get("late_decisions", 0) for c in comps.values())),
        "late_joins": int(sum(c.get("late_joins", 0) for c in comps.values())),
        "reformed_batches": int(sum(c.get("reformed_batches", 0) for c in comps.values())),
        "backdated_transfers": int(comps.get("fabric", {}).get("backdated", 0)),
        "view_age_p50_ms": _ms(age_p50),
        "view_age_p99_ms": _ms(age_p99),
    }


def _latencies(t: Tally) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(_sketch_stats("ttft", t.ttft))
    out.update(_sketch_stats("tpot", t.tpot))
    out.update(_sketch_stats("e2el", t.e2e))
    return out


def _percentiles(sketch: QuantileSketch, ps: tuple[float, ...]) -> list[float]:
    """Percentiles ``ps`` (linear interpolation while exact; the weighted bucket quantile beyond);
    0 if empty. All at once: the sketch's values gathered and partitioned once, not per
    percentile (the same figures: each percentile is computed alike either way)."""
    v, w = sketch.values()
    if len(v) == 0:
        return [0.0] * len(ps)
    if sketch.exact:
        return [float(x) for x in np.percentile(v, ps)]
    return _weighted_quantiles(v, w, [p / 100 for p in ps])


def _ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds (None stays None)."""
    return None if seconds is None else seconds * 1e3


def _sketch_stats(prefix: str, sketch: QuantileSketch, weighted: bool = False) -> dict[str, Any]:
    """:func:`_stats` of a sketch: exact while it is, within its relative accuracy beyond."""
    v, w = sketch.values()
    if sketch.exact:
        return _stats(prefix, v, w if weighted else None)
    out = _stats(prefix, v, w)
    if len(v):
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
    out: dict[str, Any] = {"lost_units": raw.get("lost_units", []),
                           "component_lost": raw.get("component_lost")}
    if "messages" in raw:
        out["messages"] = raw["messages"]
    if "placement" in raw:
        out["placement_mode"] = raw.get("placement_mode")
        out["placement"] = raw["placement"]
        out["nodes"] = len({p["node_id"] for p in raw["placement"].values()})
        out["clock_offsets_ms"] = {n: c["offset_ms"] for n, c in clock.items()}
        out["clock_uncertainty_ms"] = max((c["uncertainty_ms"] for c in clock.values()), default=0)
    return out


def _by_class(agg: RequestAggregates, end_s: float) -> dict[str, dict[str, Any]]:
    out = {}
    for name in sorted(agg.classes):
        t = agg.classes[name]
        if not t.submitted:
            continue
        entry = {"submitted": t.submitted, "completed": t.completed,
                 "slo_attainment": t.good / t.submitted,
                 "request_goodput": t.good / end_s if end_s else 0.0}
        entry.update(_sketch_stats("ttft", t.ttft))
        entry.update(_sketch_stats("tpot", t.tpot))
        out[name] = entry
    return out

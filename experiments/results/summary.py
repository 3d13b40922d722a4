"""summary.json: one run's headline metrics.

Keys follow vLLM's ``bench serve`` results where the concept is the same (``mean_ttft_ms``,
``p99_itl_ms``, ``output_throughput``, ``request_goodput``, ...) and add the emulator's own
(``engine``, ``lag_p99_ms``, utilization per pool, cost per million tokens, fabric figures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from disagg.cluster.config import Experiment
from disagg.cluster.hardware.perf import peak_flops, prefill_flops
from disagg.experiments.results.prefix import prefix_summary
from disagg.experiments.results.tables import _busy_step, by_name, step_integral

PERCENTILES = (50, 90, 99)


def _stats(prefix: str, values_s: list[float], weights: list[float] | None = None) -> dict[str, Any]:
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
    fractions = []
    for name, comp in by_name(raw).items():
        if name.startswith(kind + "-") and "log" in comp:
            t, v = _busy_step(comp["log"]["busy"])
            fractions.append(float(step_integral(t, v, np.array([end_s]))[0]) / end_s)
    return float(np.mean(fractions)) if fractions and end_s > 0 else None


def _prefill_mfu(exp: Experiment, raw: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """Model FLOPs of the prefills done / (busy seconds x chips x peak): how well busy prefill
    time was used (batching small prompts raises it when the weights read dominates)."""
    busy = sum(e - s for name, c in by_name(raw).items() if name.startswith("prefill-")
               for s, e in c["log"]["busy"])
    if busy <= 0 or exp.prefill is None:
        return None
    flops = sum(prefill_flops([r["prompt_tokens"]], exp.model,
                              None if r.get("cached_tokens") is None else [r["cached_tokens"]])
                for r in rows if r.get("first_token_s") is not None)
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


def _fabric(transfers: list[dict[str, Any]], timeseries: pa.Table) -> dict[str, Any]:
    durations = [t["modeled_end_s"] - t["start_s"] for t in transfers]
    out: dict[str, Any] = {"fabric_bytes": float(sum(t["modeled_bytes"] for t in transfers))}
    out.update({f"p{p}_transfer_ms": (float(np.percentile(durations, p)) * 1e3 if durations else None)
                for p in (50, 99)})
    # the per-link utilization the timeseries already sampled, not a second resampling
    use = [u for k, u in zip(timeseries.column("kind").to_pylist(),
                             timeseries.column("utilization").to_pylist(), strict=True)
           if k == "link" and u is not None] if "kind" in timeseries.column_names else []
    out["peak_link_utilization"] = max(use, default=0.0)
    return out


def makespan(rows: list[dict[str, Any]]) -> float:
    """Emu seconds from 0 to the last completion (or the last arrival, if later)."""
    done = [r["last_token_s"] for r in rows if r["status"] == "completed"]
    return max(done + [r["arrival_s"] for r in rows], default=0.0)


def summarize(exp: Experiment, raw: dict[str, Any], rows: list[dict[str, Any]],
              transfers: list[dict[str, Any]], timeseries: pa.Table) -> dict[str, Any]:
    """The summary.json dict for one run."""
    done = [r for r in rows if r["status"] == "completed"]
    end_s = makespan(rows)
    tokens = int(sum(r["output_tokens"] for r in done))
    good = sum(1 for r in rows if r["slo_met"])
    comps = by_name(raw)
    lags = np.concatenate([np.asarray(c.get("lags_s", []), dtype=np.float64) for c in comps.values()])
    itl, itl_w = _itl(comps, done)
    out: dict[str, Any] = {
        "experiment": exp.experiment.name, "engine": raw["engine"],
        "dilation": exp.experiment.dilation, "seed": exp.experiment.seed,
        "submitted": len(rows), "completed": len(done),
        "rejected": sum(1 for r in rows if r["status"] == "rejected"),
        "failed": sum(1 for r in rows if r["status"] == "failed"),
        "cancelled": sum(1 for r in rows if r["status"] == "cancelled"),
        "duration_s": end_s, "total_input_tokens": int(sum(r["prompt_tokens"] for r in done)),
        "total_output_tokens": tokens,
        "request_throughput": len(done) / end_s if end_s else 0.0,
        "output_throughput": tokens / end_s if end_s else 0.0,
        "request_goodput": good / end_s if end_s else 0.0,
        "slo_attainment": good / len(rows) if rows else None,
    }
    out.update(_stats("ttft", [r["ttft_s"] for r in done]))
    out.update(_stats("tpot", [r["tpot_s"] for r in done if r["output_tokens"] > 1]))
    out.update(_stats("itl", itl, itl_w))
    out.update(_stats("e2el", [r["e2e_s"] for r in done]))
    out["faults"] = [f"{text}" for _, text in raw.get("faults", [])]
    out["redone"] = sum(1 for r in rows if r.get("redone_from"))
    out["prefill_utilization"] = utilization(raw, "prefill", end_s)
    out["prefill_busy_mfu"] = _prefill_mfu(exp, raw, rows)
    out["decode_utilization"] = utilization(raw, "decode", end_s)
    out["colocated_utilization"] = utilization(raw, "colocated", end_s)
    out.update(_costs(exp, end_s, tokens))
    out.update(_fabric(transfers, timeseries))
    out["lag_p50_ms"] = float(np.percentile(lags, 50)) * 1e3 if len(lags) else 0.0
    out["lag_p99_ms"] = float(np.percentile(lags, 99)) * 1e3 if len(lags) else 0.0
    out["late_decisions"] = int(sum(c.get("late_decisions", 0) for c in comps.values()))
    out["retroactive_joins"] = int(sum(c.get("retroactive_joins", 0) for c in comps.values()))
    out["backdated_transfers"] = int(comps.get("fabric", {}).get("backdated", 0))
    ages = [r[k] for r in rows for k in ("prefill_view_age_s", "decode_view_age_s")
            if r.get(k) is not None]
    out["view_age_p50_ms"] = float(np.percentile(ages, 50)) * 1e3 if ages else None
    out["view_age_p99_ms"] = float(np.percentile(ages, 99)) * 1e3 if ages else None
    out.update(_cluster(raw))
    out.update(prefix_summary(raw, rows))
    out["reasons"] = _reasons(rows)
    out["by_slo_class"] = _by_class(rows, end_s)
    return out


def _itl(comps: dict[str, dict[str, Any]], done: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Inter-token latencies: decode step times weighted by batch size, plus each request's gap
    from its first token (prefill) to its first decode token (transfer and admission wait)."""
    itl: list[float] = []
    weights: list[float] = []
    for name, comp in comps.items():
        if name.startswith(("decode-", "colocated-")):
            itl.extend(comp["itl_s"])
            weights.extend(comp["itl_weight"])
    for r in done:
        if r.get("first_decode_token_s") is not None:
            # the decode unit leaves each request's first step out of its weights
            itl.append(r["first_decode_token_s"] - r["first_token_s"])
            weights.append(1.0)
    return itl, weights


def _cluster(raw: dict[str, Any]) -> dict[str, Any]:
    """Where the components ran (ray engine), the clock alignment, and units lost mid-run."""
    clock = raw.get("clock", {})
    out: dict[str, Any] = {"lost_units": raw.get("lost_units", []),
                           "component_lost": raw.get("component_lost")}
    if "placement" in raw:
        out["placement_mode"] = raw.get("placement_mode")
        out["placement"] = raw["placement"]
        out["nodes"] = len({p["node_id"] for p in raw["placement"].values()})
        out["clock_offsets_ms"] = {n: c["offset_ms"] for n, c in clock.items()}
        out["clock_uncertainty_ms"] = max((c["uncertainty_ms"] for c in clock.values()), default=0)
    return out


def _reasons(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        if r["status"] != "completed":
            out[r["reason"]] = out.get(r["reason"], 0) + 1
    return out


def _by_class(rows: list[dict[str, Any]], end_s: float) -> dict[str, dict[str, Any]]:
    classes = sorted({r["slo_class"] for r in rows})
    out = {}
    for c in classes:
        rs = [r for r in rows if r["slo_class"] == c]
        done = [r for r in rs if r["status"] == "completed"]
        good = sum(1 for r in rs if r["slo_met"])
        entry = {"submitted": len(rs), "completed": len(done),
                 "slo_attainment": good / len(rs), "request_goodput": good / end_s if end_s else 0.0}
        entry.update(_stats("ttft", [r["ttft_s"] for r in done]))
        entry.update(_stats("tpot", [r["tpot_s"] for r in done if r["output_tokens"] > 1]))
        out[c] = entry
    return out

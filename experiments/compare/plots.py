"""The comparison report's plots, each returned as PNG bytes (matplotlib, Agg, no pyplot state).

Latencies are emu milliseconds; rates are requests per emu second.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from disagg.experiments.compare.data import (  # noqa: E402
    TARGET_ATTAINMENT,
    SavedRun,
    cell_estimates,
    policies,
    rates,
)

PHASES = ("prefill queue", "prefill", "transfer", "decode wait", "decode")
_DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _per_rate_axes(n_rates: int, title: str, height_in: float = 3.2) -> tuple[Figure, list[Axes]]:
    cols = min(n_rates, 3)
    rows = math.ceil(n_rates / cols)
    fig = Figure(figsize=(4.2 * cols, height_in * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_rates:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:n_rates]


def _by_cell(runs: list[SavedRun]) -> dict[tuple[str, float], list[SavedRun]]:
    out: dict[tuple[str, float], list[SavedRun]] = {}
    for r in runs:
        out.setdefault((r.policy, r.rate_per_s), []).append(r)
    return out


def cdf_plot(runs: list[SavedRun], column: str, label: str, slo_s: float | None = None) -> bytes:
    """Empirical CDF of a per-request latency column (seconds) per policy, one panel per rate;
    repeats are pooled; the SLO target (if given) is a dashed line."""
    cells = _by_cell(runs)
    fig, axes = _per_rate_axes(len(rates(runs)), f"{label} CDF (repeats pooled)")
    for ax, rate in zip(axes, rates(runs), strict=True):
        for policy in policies(runs):
            v = [row[column] for run in cells.get((policy, rate), []) for row in run.requests
                 if row["status"] == "completed" and row[column] is not None
                 and (column != "tpot_s" or row["output_tokens"] > 1)]
            if v:
                x = np.sort(np.asarray(v)) * 1e3
                ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=policy)
        _slo_line(ax, slo_s)
        ax.set_title(f"{rate:.4g} req/s")
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _png(fig)


def _slo_line(ax: Axes, slo_s: float | None) -> None:
    """The SLO target as a dashed line, or a note when it lies far right of every sample."""
    if slo_s is None:
        return
    right = ax.get_xlim()[1]
    if slo_s * 1e3 <= 1.5 * right:
        ax.axvline(slo_s * 1e3, color="grey", linestyle="--", linewidth=1, label="SLO")
    else:
        ax.text(0.98, 0.05, f"SLO {slo_s * 1e3:g} ms (off scale)", transform=ax.transAxes,
                ha="right", fontsize="small", color="grey")


def _rate_panel(ax: Axes, rows: list[dict[str, Any]], key: str, scale: float, ylabel: str,
                labels: dict[str, str] | None = None) -> None:
    est = cell_estimates(rows, key)
    for policy in dict.fromkeys(r["policy"] for r in rows):
        cells = sorted((rate, e) for (p, rate), e in est.items() if p == policy and e.mean is not None)
        x = [rate for rate, _ in cells]
        y = [(e.mean or 0.0) * scale for _, e in cells]
        err = [(e.ci or 0.0) * scale for _, e in cells]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=(labels or {}).get(policy, policy))
    ax.set_xlabel("request rate (req/s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def rate_plot(rows: list[dict[str, Any]], capacity: dict[str, float | None]) -> bytes:
    """Goodput and SLO attainment against request rate (mean ± 95% CI, clipped to the possible
    range), with each policy's capacity marked by a dotted line in its colour."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    good, att = fig.subplots(1, 2)
    labels = {p: f"{p} (capacity {'< lowest rate' if c is None else f'{c:.3g} req/s'})"
              for p, c in capacity.items()}
    _rate_panel(good, rows, "request_goodput", 1.0, "goodput (req/s meeting every SLO)")
    _rate_panel(att, rows, "slo_attainment", 100.0, "SLO attainment (%)", labels)
    good.set_ylim(bottom=0)
    att.set_ylim(0, 105)
    att.axhline(100 * TARGET_ATTAINMENT, color="grey", linestyle="--", linewidth=1)
    for i, cap in enumerate(capacity.values()):
        if cap is not None:
            att.axvline(cap, color=f"C{i}", linestyle=":", linewidth=1.5)
    att.legend(fontsize="small", loc="lower left")
    fig.suptitle(f"goodput and SLO attainment (mean ± 95% CI over repeats); capacity = highest "
                 f"rate at >= {100 * TARGET_ATTAINMENT:.0f}% attainment")
    return _png(fig)


def _grouped_bars(ax: Axes, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, groups, rotation=45, ha="right", fontsize="small")


def utilization_plot(runs: list[SavedRun]) -> bytes:
    """Mean busy fraction of every prefill and decode unit, per policy, one panel per rate."""
    cells = _by_cell(runs)
    fig, axes = _per_rate_axes(len(rates(runs)), "per-unit utilization (mean busy fraction)")
    for ax, rate in zip(axes, rates(runs), strict=True):
        per_policy = {p: _unit_busy(cells.get((p, rate), [])) for p in policies(runs)}
        order = _unit_order(cells.get((policies(runs)[0], rate), []))
        units = sorted({u for busy in per_policy.values() for u in busy},
                       key=lambda u: order.get(u, len(order)))
        _grouped_bars(ax, units, {p: [100 * busy.get(u, 0.0) for u in units]
                                  for p, busy in per_policy.items()})
        ax.set_title(f"{rate:.4g} req/s")
        ax.set_ylabel("busy (%)")
        ax.set_ylim(0, 105)
    axes[0].legend(fontsize="small")
    return _png(fig)


def _unit_order(runs: list[SavedRun]) -> dict[str, int]:
    """Units in the order the timeseries lists them (prefill pool first, by index)."""
    order: dict[str, int] = {}
    for run in runs:
        if "kind" in run.timeseries.column_names:
            for entity, kind in zip(run.timeseries.column("entity").to_pylist(),
                                    run.timeseries.column("kind").to_pylist(), strict=True):
                if kind in ("prefill", "decode"):
                    order.setdefault(entity, (kind != "prefill", len(order)))  # type: ignore[arg-type]
    ranked = sorted(order, key=lambda u: order[u])
    return {u: i for i, u in enumerate(ranked)}


def _unit_busy(runs: list[SavedRun]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for run in runs:
        ts = run.timeseries.to_pydict()
        if "kind" not in ts:
            continue
        per: dict[str, list[float]] = {}
        for entity, kind, busy in zip(ts["entity"], ts["kind"], ts["busy_fraction"], strict=True):
            if kind in ("prefill", "decode", "colocated"):
                per.setdefault(entity, []).append(busy)
        for entity, values in per.items():
            sums.setdefault(entity, []).append(float(np.mean(values)))
    return {u: float(np.mean(v)) for u, v in sums.items()}


def phase_durations_s(row: dict[str, Any]) -> dict[str, float] | None:
    """A completed request's end-to-end latency split into the report's five phases (seconds):
    prefill queue, prefill, transfer (from first token to KV delivered, waiting for a decode unit
    included), decode wait (KV delivered to decode admission), decode. They sum to ``e2e_s``.
    A colocated unit moves no KV: its transfer and decode wait are 0."""
    if row["status"] != "completed" or row.get("decode_start_s") is None:
        return None
    delivered = row["transfer_end_s"] if row.get("transfer_end_s") is not None \
        else row["first_token_s"]
    return {"prefill queue": row["prefill_start_s"] - row["arrival_s"],
            "prefill": row["first_token_s"] - row["prefill_start_s"],
            "transfer": delivered - row["first_token_s"],
            "decode wait": row["decode_start_s"] - delivered,
            "decode": row["last_token_s"] - row["decode_start_s"]}


def breakdown_plot(runs: list[SavedRun]) -> bytes:
    """Mean time per request phase (stacked), per policy, one panel per rate."""
    cells = _by_cell(runs)
    fig, axes = _per_rate_axes(len(rates(runs)), "latency breakdown per request phase (mean)")
    for ax, rate in zip(axes, rates(runs), strict=True):
        names = policies(runs)
        means = np.zeros((len(names), len(PHASES)))
        for i, p in enumerate(names):
            parts = [d for run in cells.get((p, rate), []) for row in run.requests
                     if (d := phase_durations_s(row)) is not None]
            if parts:
                means[i] = [1e3 * np.mean([d[ph] for d in parts]) for ph in PHASES]
        left = np.zeros(len(names))
        for j, phase in enumerate(PHASES):
            ax.barh(names, means[:, j], left=left, label=phase, color=f"C{j + 3}")
            left += means[:, j]
        ax.set_title(f"{rate:.4g} req/s")
        ax.set_xlabel("ms")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(PHASES),
               fontsize="small")
    return _png(fig)


def lines_plot(rows: list[dict[str, Any]], panels: list[tuple[str, str]], title: str) -> bytes:
    """One panel per (summary column, y label) against request rate, mean ± 95% CI per policy;
    the quantities are non-negative, so the axes start at 0."""
    fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        _rate_panel(ax, rows, key, 1.0, ylabel)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    return _png(fig)


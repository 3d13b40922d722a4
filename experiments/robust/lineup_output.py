"""What ``disagg compare ... --robust`` writes: the few lines for a design review
(:func:`lineup_summary`), robust.json (settings, dimensions, shares, break-evens, tornado),
robust.parquet (every point x cluster) and robust.html (real tables, the tornado and the shares
as embedded PNG plots with labelled axes)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from disagg.experiments.compare import html as h
from disagg.experiments.robust.dimensions import RobustSettings
from disagg.experiments.robust.lineup_core import LineupAnalysis
from disagg.experiments.robust.output import analysis_json

RERUNS = {"cost": "price", "power": "power", "racks": None, "none": None}


def _effect(kind: str, equal: str) -> str:
    """What a change of an assumption of ``kind`` costs under ``--equal equal``."""
    if kind == "perf":
        return "re-runs (same units)"
    if kind == RERUNS[equal]:
        return "re-lines-up (units change) and re-runs"
    return "re-scores $ figures only (no run)"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def lineup_summary(a: LineupAnalysis, settings: RobustSettings) -> list[str]:
    """The decision and its robustness in about five lines."""
    lines = [f"Decision at the default assumptions (equal {a.equal}): {a.winner} — capacity "
             f"{a.winner_capacity:.4g} req/s, goodput {a.winner_goodput:.4g} req/s at the highest "
             "rate"]
    mine = dict(a.shares).get(a.winner, 0.0)
    top = a.shares[0] if a.shares else None
    lines.append(f"Robustness: {a.winner} wins in {mine:.0%} of {settings.samples} points (Latin "
                 f"hypercube, seed {settings.seed}) over {len(a.dims)} assumptions"
                 + ("" if top is None or top[0] == a.winner else
                    f"; most often the winner: {top[0]} ({top[1]:.0%})"))
    first = sorted(a.break_evens, key=lambda b: b.value is None)  # the ones that flip first
    lines += ["Break-even: " + b.sentence() for b in first[:2]]
    if a.tornado and a.tornado[0].goodput_at_low != a.tornado[0].goodput_at_high:
        t = a.tornado[0]
        lines.append(f"Most sensitive: {t.dimension} moves {a.winner}'s goodput from "
                     f"{t.goodput_at_low:.4g} (at {t.low:.4g}) to {t.goodput_at_high:.4g} req/s "
                     f"(at {t.high:.4g})")
    elif a.tornado:
        lines.append(f"Most sensitive: none of the varied assumptions moves {a.winner}'s goodput")
    return lines


def lineup_json(a: LineupAnalysis, settings: RobustSettings) -> dict[str, Any]:
    """robust.json's content (the per-point rows are in robust.parquet)."""
    out = analysis_json(a, settings)
    out["shares"] = [{"cluster": c, "wins": s} for c, s in a.shares]
    out["reruns_on"] = ["perf"] + ([k] if (k := RERUNS[a.equal]) else [])
    out["summary"] = lineup_summary(a, settings)
    return out


def tornado_plot(a: LineupAnalysis) -> bytes:
    """Horizontal bars: the default winner's goodput at each dimension's low and high end."""
    fig = Figure(figsize=(7.5, 0.5 * len(a.tornado) + 1.5), layout="constrained")
    ax = fig.subplots()
    names = [t.dimension for t in a.tornado][::-1]
    mid = a.winner_goodput
    ax.barh(names, [t.goodput_at_low - mid for t in a.tornado][::-1], left=mid,
            label="assumption at its low end")
    ax.barh(names, [t.goodput_at_high - mid for t in a.tornado][::-1], left=mid, alpha=0.7,
            label="assumption at its high end")
    ax.axvline(mid, color="k", lw=1)
    ax.set_xlabel(f"{a.winner}'s goodput at the highest rate, req/s (default winner)")
    ax.set_ylabel("assumption (others at default)")
    ax.legend(fontsize=8)
    return _png(fig)


def shares_plot(a: LineupAnalysis) -> bytes:
    """Each cluster's share of the sampled points where it wins."""
    fig = Figure(figsize=(7.5, 0.45 * len(a.shares) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh([c[:60] for c, _ in a.shares][::-1], [100 * s for _, s in a.shares][::-1])
    ax.set_xlabel("share of sampled assumption points where it wins, %")
    ax.set_ylabel("cluster")
    ax.set_xlim(0, 100)
    return _png(fig)


def lineup_page(a: LineupAnalysis, settings: RobustSettings, title: str) -> str:
    """robust.html: the summary, the plots, then every table."""
    f = "{:.4g}".format
    body = "".join(f"<p class=\"lead\">{h.e(line)}</p>" for line in lineup_summary(a, settings))
    body += h.figures([("tornado: the default winner's goodput per assumption", tornado_plot(a)),
                       ("share of the assumption space where each cluster wins",
                        shares_plot(a))])
    body += "<h2>Assumptions varied</h2>" + h.table(
        ("assumption", "kind", "low", "default", "high", "range from", "a change"),
        [(d.name, d.kind, f(d.low), f(d.default), f(d.high), d.source,
          _effect(d.kind, a.equal)) for d in a.dims], (0, 1, 5, 6))
    body += "<h2>Share of the sampled space</h2>" + h.table(
        ("cluster", "wins"), [(c, f"{s:.0%}") for c, s in a.shares], (0,))
    body += "<h2>Break-even values (others at default)</h2>" + h.table(
        ("assumption", "low", "high", "break-even", "winner at low", "winner at high"),
        [(b.dimension, f(b.low), f(b.high), "none" if b.value is None else f(b.value),
          b.winner_at_low, b.winner_at_high) for b in a.break_evens], (0, 4, 5))
    body += "<h2>Tornado</h2>" + h.table(
        ("assumption", "low", "goodput at low", "winner at low", "high", "goodput at high",
         "winner at high"),
        [(t.dimension, f(t.low), f(t.goodput_at_low), t.winner_at_low, f(t.high),
          f(t.goodput_at_high), t.winner_at_high) for t in a.tornado], (0, 3, 6))
    default = [r for r in a.rows if r["point"] == -1]
    body += "<h2>The line-up at the default assumptions</h2>" + h.table(
        ("cluster", "units", "$/h", "capacity req/s", "goodput req/s", "good requests per $"),
        [(r["cluster"], r["units"], "n/a" if r["usd_per_hour"] is None else f(r["usd_per_hour"]),
          f(r["capacity_per_s"]), f(r["goodput_per_s"]),
          "n/a" if r["good_requests_per_usd"] is None else f(r["good_requests_per_usd"]))
         for r in default], (0, 1))
    return h.page(f"Robust line-up: {title}", body)


def write_lineup_robust(folder: Path, a: LineupAnalysis, settings: RobustSettings,
                        title: str) -> None:
    """robust.json, robust.parquet and robust.html into ``folder``."""
    (folder / "robust.json").write_text(json.dumps(lineup_json(a, settings), indent=1) + "\n",
                                        encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(list(a.rows)), folder / "robust.parquet")
    (folder / "robust.html").write_text(lineup_page(a, settings, title), encoding="utf-8")

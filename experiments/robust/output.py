"""What ``--robust`` writes: the few lines for a design review (:func:`summary`), robust.json
(settings, dimensions, shares, break-evens, tornado, bands), robust.parquet (every point x
contender) and robust.html (real tables, the tornado, shares and bands as embedded PNG plots)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from disagg.experiments.compare import html as h
from disagg.experiments.plan.report import UNITS
from disagg.experiments.robust.analysis import Analysis
from disagg.experiments.robust.dimensions import RobustSettings


def _hw(name: str) -> str:
    return name.split(".")[0]


def summary(a: Analysis, settings: RobustSettings) -> list[str]:
    """The decision and its robustness in about five lines."""
    unit = UNITS[a.metric][1]
    top = a.shares[0] if a.shares else None
    mine = next((s for s in a.shares if s.label == a.winner), None)
    lines = [f"Decision at the default assumptions: {a.winner} ({a.winner_objective:.4g} {unit})"]
    if mine is not None:
        lines.append(f"Robustness: best in {mine.best:.0%} and on the frontier in "
                     f"{mine.frontier:.0%} of {settings.samples} points (Latin hypercube, seed "
                     f"{settings.seed}) over {len(a.dims)} assumptions"
                     + ("" if top is None or top.label == a.winner else
                        f"; most often best: {top.label} ({top.best:.0%})"))
    lines += ["Break-even: " + b.sentence(_hw(b.dimension)) for b in a.break_evens[:2]]
    if a.tornado and a.tornado[0].objective_at_low == a.tornado[0].objective_at_high:
        lines.append("Most sensitive: none of the varied assumptions moves the winner's "
                     f"{a.metric} (it uses none of their hardware)")
    elif a.tornado:
        t = a.tornado[0]
        lines.append(f"Most sensitive: {t.dimension} moves the winner's {a.metric} from "
                     f"{t.objective_at_low:.4g} (at {t.low:.4g}) to {t.objective_at_high:.4g} "
                     f"(at {t.high:.4g})")
    band = next((b for b in a.bands if b.label == a.winner), None)
    if band is not None:
        fam = {s.key: s.family for s in a.shares}
        others = [b for b in a.bands if fam.get(b.key) != fam.get(band.key)]
        top_other = max(others, key=lambda b: b.objective_high, default=None)
        rival = None if top_other is None else top_other.label
        lines.append(f"Models' error ±{band.error:.0%} on capacity: the decision "
                     + ("holds" if a.band_holds else "does NOT hold")
                     + " within the bands (its low end against every other family's high end"
                     + ("" if a.band_holds or rival is None else f"; overlaps {rival}") + ")")
    return lines


def analysis_json(a: Any, settings: RobustSettings) -> dict[str, Any]:
    """The fields every robust.json has: the analysis without its per-point rows (those are in
    robust.parquet), each dimension with its name, and the settings it ran with."""
    out = asdict(a)
    out.pop("rows")
    for d, raw in zip(a.dims, out["dims"], strict=True):
        raw["name"] = d.name
    out["settings"] = asdict(settings)
    return out


def as_json(a: Analysis, settings: RobustSettings) -> dict[str, Any]:
    """robust.json's content (the per-point rows are in robust.parquet)."""
    out = analysis_json(a, settings)
    out["summary"] = summary(a, settings)
    out["against"] = [{"hardware": hw, **asdict(b)} for hw, b in a.against]
    return out


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def tornado_plot(a: Analysis) -> bytes:
    """Horizontal bars: the default winner's objective at each dimension's low and high end."""
    fig = Figure(figsize=(7.5, 0.5 * len(a.tornado) + 1.5), layout="constrained")
    ax = fig.subplots()
    names = [t.dimension for t in a.tornado][::-1]
    lows = [t.objective_at_low for t in a.tornado][::-1]
    highs = [t.objective_at_high for t in a.tornado][::-1]
    ax.barh(names, [lo - a.winner_objective for lo in lows], left=a.winner_objective,
            label="assumption at its low end")
    ax.barh(names, [hi - a.winner_objective for hi in highs], left=a.winner_objective,
            alpha=0.7, label="assumption at its high end")
    ax.axvline(a.winner_objective, color="k", lw=1)
    ax.set_xlabel(f"default winner's {a.metric}, {UNITS[a.metric][1]}")
    ax.set_ylabel("assumption (others at default)")
    ax.legend(fontsize=8)
    return _png(fig)


def shares_plot(a: Analysis) -> bytes:
    """Each contender's share of the sampled points where it is best / on the frontier."""
    shown = a.shares[:12]
    fig = Figure(figsize=(7.5, 0.45 * len(shown) + 1.5), layout="constrained")
    ax = fig.subplots()
    labels = [s.label[:60] for s in shown][::-1]
    ax.barh(labels, [100 * s.frontier for s in shown][::-1], label="on the frontier")
    ax.barh(labels, [100 * s.best for s in shown][::-1], label="best", alpha=0.8)
    ax.set_xlabel("share of sampled assumption points, %")
    ax.set_ylabel("candidate")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8)
    return _png(fig)


def bands_plot(a: Analysis) -> bytes:
    """Each contender's objective at default with the models' error as a bar."""
    fig = Figure(figsize=(7.5, 0.45 * len(a.bands) + 1.5), layout="constrained")
    ax = fig.subplots()
    ys = range(len(a.bands))
    mids = [(b.objective_low + b.objective_high) / 2 for b in a.bands]
    ax.errorbar(mids, list(ys), xerr=[[m - b.objective_low for m, b in zip(mids, a.bands,
                                                                            strict=True)],
                                      [b.objective_high - m for m, b in zip(mids, a.bands,
                                                                             strict=True)]],
                fmt="o", capsize=3)
    ax.set_yticks(list(ys), [b.label[:60] for b in a.bands], fontsize=7)
    ax.set_xlabel(f"{a.metric} at default assumptions, {UNITS[a.metric][1]} (± models' error)")
    ax.set_ylabel("candidate")
    return _png(fig)


def html_page(a: Analysis, settings: RobustSettings, title: str) -> str:
    """robust.html: the summary, the plots, then every table."""
    f = "{:.4g}".format
    body = "".join(f"<p class=\"lead\">{h.e(line)}</p>" for line in summary(a, settings))
    body += h.figures([("tornado: the default winner's objective per assumption",
                        tornado_plot(a)),
                       ("share of the assumption space per candidate", shares_plot(a)),
                       ("capacity bands from the models' error", bands_plot(a))])
    body += "<h2>Assumptions varied</h2>" + h.table(
        ("assumption", "kind", "low", "default", "high", "range from"),
        [(d.name, d.kind, f(d.low), f(d.default), f(d.high), d.source) for d in a.dims], (0, 1, 5))
    body += "<h2>Shares of the sampled space</h2>" + h.table(
        ("candidate", "family", "best", "on the frontier"),
        [(s.label, s.family, f"{s.best:.0%}", f"{s.frontier:.0%}") for s in a.shares], (0, 1))
    body += "<h2>Break-even values (others at default)</h2>" + h.table(
        ("assumption", "low", "high", "break-even", "finding"),
        [(b.dimension, f(b.low), f(b.high), "none" if b.value is None else f(b.value),
          b.sentence(_hw(b.dimension))) for b in a.break_evens], (0, 4))
    if a.against:
        body += "<h2>Break-even against one hardware alone</h2>" + h.table(
            ("assumption", "against", "break-even", "finding"),
            [(b.dimension, hw, "none" if b.value is None else f(b.value),
              b.sentence(_hw(b.dimension))) for hw, b in a.against], (0, 1, 3))
    body += "<h2>Tornado</h2>" + h.table(
        ("assumption", "low", "objective at low", "best at low", "high", "objective at high",
         "best at high"),
        [(t.dimension, f(t.low), f(t.objective_at_low), t.winner_at_low, f(t.high),
          f(t.objective_at_high), t.winner_at_high) for t in a.tornado], (0, 3, 6))
    body += "<h2>Capacity bands (models' error)</h2>" + h.table(
        ("candidate", "error", "capacity req/s", "objective low", "objective high"),
        [(b.label, f"±{b.error:.0%}", f(b.capacity), f(b.objective_low), f(b.objective_high))
         for b in a.bands], (0,))
    return h.page(f"Robust plan: {title}", body)


def write_robust(folder: Path, a: Analysis, settings: RobustSettings, title: str) -> None:
    """robust.json, robust.parquet and robust.html into ``folder``."""
    (folder / "robust.json").write_text(json.dumps(as_json(a, settings), indent=1) + "\n",
                                        encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(list(a.rows)), folder / "robust.parquet")
    (folder / "robust.html").write_text(html_page(a, settings, title), encoding="utf-8")

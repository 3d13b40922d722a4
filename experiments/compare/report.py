"""Render a comparison folder's report from its saved runs: comparison.parquet, table.csv,
plots/*.png, report.md and a self-contained report.html (plots embedded as base64 PNG, no
scripts, no external resources). Nothing is run; ``disagg report DIR`` calls this alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from disagg.experiments.compare import html as h
from disagg.experiments.compare import prefix
from disagg.experiments.compare.data import (
    TARGET_ATTAINMENT,
    target_attainment,
    SavedRun,
    capacity,
    comparison_table,
    load_manifest,
    load_runs,
    run_row,
)
from disagg.experiments.compare.table import (
    COLUMNS,
    REGRET_COLUMNS,
    Column,
    Row,
    build_rows,
    summary_columns,
    to_csv,
    to_html,
    to_markdown,
)
from disagg.experiments.compare.task_plots import TASK_PLOT_TITLES, task_plots

PLOT_TITLES = {
    "ttft_cdf.png": "TTFT CDF", "tpot_cdf.png": "TPOT CDF",
    "goodput_attainment.png": "goodput and SLO attainment against request rate",
    "utilization.png": "per-unit utilization", "latency_breakdown.png": "latency breakdown",
    "regret.png": "router regret", "lag.png": "emulator lag",
}


@dataclass
class Report:
    """What a rendered report holds (also returned to the CLI for its rich table)."""

    experiment: str
    rows: list[dict[str, Any]]
    table: list[Row]
    regret: list[Row]
    capacity: dict[str, float | None]
    plots: dict[str, bytes] = field(default_factory=dict)
    columns: tuple[Column, ...] = COLUMNS  # the summary table's (prefix-cache ones when present)
    manifest: dict[str, Any] = field(default_factory=dict)  # compare.json (a line-up's clusters)


def build_report(out_dir: Path) -> Report:
    """Load the runs and compute rows, tables, capacities and plots (writes nothing)."""
    runs = load_runs(out_dir)
    rows = [run_row(r, Path(out_dir)) for r in runs]
    cap = capacity(rows, target_attainment(runs[0].experiment.slo.percentile_form))
    columns = summary_columns(rows)
    report = Report(runs[0].summary["experiment"], rows, build_rows(rows, columns),
                    build_rows(rows, REGRET_COLUMNS), cap, columns=columns,
                    manifest=load_manifest(Path(out_dir)))
    report.plots = {**_plots(runs, rows, cap), **task_plots(runs)}
    return report


def _plots(runs: list[SavedRun], rows: list[dict[str, Any]], cap: dict[str, float | None]) -> dict[str, bytes]:
    # matplotlib is imported only to draw: `disagg --help` (which imports the CLI) must not pay it
    from disagg.experiments.compare import plots

    return {
        "ttft_cdf.png": plots.cdf_plot(runs, "ttft_s", "TTFT", runs[0].experiment.slo.ttft_s),
        "tpot_cdf.png": plots.cdf_plot(runs, "tpot_s", "TPOT", runs[0].experiment.slo.tpot_s),
        "goodput_attainment.png": plots.rate_plot(rows, cap),
        "utilization.png": plots.utilization_plot(runs),
        "latency_breakdown.png": plots.breakdown_plot(runs),
        "regret.png": plots.lines_plot(rows, [("mean_regret_ms", "mean regret (ms)"),
                                              ("p99_regret_ms", "p99 regret (ms)")],
                                       "router regret (mean ± 95% CI over repeats)"),
        "lag.png": plots.lines_plot(rows, [("lag_p50_ms", "lag p50 (ms)"), ("lag_p99_ms", "lag p99 (ms)"),
                                           ("late_decisions", "late decisions")],
                                    "emulator lag (mean ± 95% CI over repeats)"),
    }


def _titles(report: Report) -> dict[str, str]:
    """Plot file -> title of the plots the report has (task plots only with tasks)."""
    return {n: t for n, t in {**PLOT_TITLES, **TASK_PLOT_TITLES}.items() if n in report.plots}


def _write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def render_report(out_dir: Path) -> Report:
    """Write every report file into ``out_dir`` from its runs; returns the report."""
    out_dir = Path(out_dir)
    report = build_report(out_dir)
    (out_dir / "plots").mkdir(exist_ok=True)
    for name, png in report.plots.items():
        _write(out_dir / "plots" / name, png)
    tmp = out_dir / ".comparison.parquet.tmp"
    pq.write_table(comparison_table(report.rows), tmp)
    os.replace(tmp, out_dir / "comparison.parquet")
    _write(out_dir / "table.csv", to_csv(build_rows(report.rows, report.columns + REGRET_COLUMNS),
                                         report.columns + REGRET_COLUMNS))
    _write(out_dir / "report.md", markdown(report))
    _write(out_dir / "report.html", html_page(report))
    return report


def kind(report: Report) -> str:
    """The report's title: "Cluster line-up: A vs B" when the comparison lined clusters up, else
    "Policy comparison: <experiment>"."""
    clusters = report.manifest.get("clusters")
    if clusters:
        return "Cluster line-up: " + " vs ".join(c["label"] for c in clusters)
    return f"Policy comparison: {report.experiment}"


def _rates_text(report: Report) -> str:
    rates = sorted({r["rate_per_s"] for r in report.rows})
    if any(r.get("workload_rate") for r in report.rows):
        return (f"the workload's own arrivals (no rate set), offered {rates[0]:.3g} req/s on "
                "average (requests / arrival span)")
    return "request rates " + ", ".join(f"{r:g}" for r in rates) + " req/s"


def _setup(report: Report) -> list[str]:
    names = list(dict.fromkeys(r["policy"] for r in report.rows))
    repeats = sorted({r["repeat"] for r in report.rows})
    seeds = sorted({r["seed"] for r in report.rows})
    first = report.rows[0]
    lineup = report.manifest.get("clusters")
    what = (f"clusters {', '.join(f'`{n}`' for n in names)} lined up at "
            f"{_equal_text(report.manifest)}, each with its own router" if lineup else
            f"router policies {', '.join(f'`{n}`' for n in names)}")
    who = "cluster" if lineup else "policy"
    return [
        f"Experiment `{report.experiment}` on the {first['engine']} engine (dilation "
        f"{first['dilation']:g}): {what}; {_rates_text(report)}; {len(repeats)} repeat(s) per "
        f"cell, seeds {', '.join(map(str, seeds))}. Every {who} sees the identical request stream "
        "at each (rate, repeat).",
    ]


def _equal_text(manifest: dict[str, Any]) -> str:
    equal = manifest.get("equal", "none")
    return "their own sizes (--equal none)" if equal == "none" else \
        f"equal {equal} (the first cluster's budget; units rounded down)"


BUDGET_UNITS = {"cost": ("$/h", 1.0), "power": ("kW", 1e-3), "racks": ("racks", 1.0)}


def lineup_rows(manifest: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The line-up table: each cluster's units per pool and its budget against the first's."""
    unit, scale = BUDGET_UNITS.get(manifest.get("equal", "none"), ("", 1.0))
    clusters = manifest.get("clusters") or []
    pools = list(dict.fromkeys(k for c in clusters for k in c["units"]))
    header = ["cluster", *(f"{k} units" for k in pools)]
    if unit:
        header += [f"budget ({unit})", "of the first's"]
    rows = []
    for c in clusters:
        row = [c["label"], *(str(c["units"].get(k, "")) for k in pools)]
        if unit:
            row += ["n/a" if c["budget"] is None else f"{c['budget'] * scale:,.2f}",
                    "n/a" if c["budget_ratio"] is None else f"{100 * c['budget_ratio']:.0f} %"]
        rows.append(row)
    return header, rows


def capacity_rows(report: Report) -> list[list[str]]:
    """(policy or cluster, capacity text) per row of the capacity table."""
    low = "below the offered rate" if any(r.get("workload_rate") for r in report.rows) \
        else "below the lowest rate tested"
    return [[p, low if c is None else f"{c:.3g}"] for p, c in report.capacity.items()]


TABLE_NOTE = ("Mean ± half-width of the 95% confidence interval over repeats (Student t, n − 1 "
              "degrees of freedom; no interval with one repeat). **Bold**: the best at that "
              "rate (lowest latency and cost; highest goodput, attainment and throughput); "
              "utilization is not marked, since neither direction is better at a fixed offered load.")
REGRET_NOTE = ("Router regret of a request: how much earlier its first token would have come had "
               "the router sent it to the best other prefill unit, with every other request's "
               "recorded schedule held fixed (the request runs alone in the earliest idle span "
               "that fits it there); 0 when no other unit would have been earlier. It never "
               "exceeds the request's TTFT. See docs/compare.md.")
CAPACITY_NOTE = (f"Capacity: the highest offered rate whose mean SLO attainment is at least "
                 f"{100 * TARGET_ATTAINMENT:.0f}%, every lower tested rate included. Without a "
                 "rate sweep (a trace or closed loop at its own arrivals) it is the rate offered, "
                 "when attainment met the target: a lower bound on the true capacity.")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    return prefix.to_markdown(header, rows)


def markdown(report: Report) -> str:
    """report.md: setup, line-up, capacity, summary table, regret, plots (linked from plots/)."""
    who = "cluster" if report.manifest.get("clusters") else "policy"
    parts = [f"# {kind(report)}", "", *_setup(report), ""]
    if report.manifest.get("clusters"):
        parts += ["## Line-up", "", _md_table(*lineup_rows(report.manifest))]
    parts += ["## Capacity", "", CAPACITY_NOTE, "",
              _md_table([who, "capacity (req/s)"], capacity_rows(report)),
              "## Summary", "", TABLE_NOTE, "", to_markdown(report.table, report.columns, who),
              "## Router regret", "", REGRET_NOTE, "",
              to_markdown(report.regret, REGRET_COLUMNS, who)]
    header, body = prefix.unit_hit_table(report.rows)
    if body:
        parts += ["## Prefix cache per unit", "", prefix.NOTE, "", prefix.to_markdown(header, body)]
    parts += ["## Plots", ""]
    for name, title in _titles(report).items():
        parts += [f"### {title}", "", f"![{title}](plots/{name})", ""]
    return "\n".join(parts)


def html_page(report: Report) -> str:
    """report.html: the same content, one file, plots inline as data: URIs."""
    who = "cluster" if report.manifest.get("clusters") else "policy"
    setup = "".join(f"<p class=\"lead\">{h.e(s).replace('`', '')}</p>" for s in _setup(report))
    lineup = ("<h2>Line-up</h2>" + h.table(*lineup_rows(report.manifest))
              if report.manifest.get("clusters") else "")
    header, body = prefix.unit_hit_table(report.rows)
    hits = (f"<h2>Prefix cache per unit</h2>{h.note(prefix.NOTE)}"
            f"{prefix.to_html(header, body)}") if body else ""
    return h.page(kind(report), (
        f"{setup}{lineup}<h2>Capacity</h2>{h.note(CAPACITY_NOTE)}"
        f"{h.table([who, 'capacity (req/s)'], capacity_rows(report))}"
        f"<h2>Summary</h2>{h.note(TABLE_NOTE)}{to_html(report.table, report.columns, who)}"
        f"<h2>Router regret</h2>{h.note(REGRET_NOTE)}"
        f"{to_html(report.regret, REGRET_COLUMNS, who)}{hits}<h2>Plots</h2>"
        + h.figures([(title, report.plots[name]) for name, title in _titles(report).items()])))

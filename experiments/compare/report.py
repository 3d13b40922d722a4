"""Render a comparison folder's report from its saved runs: comparison.parquet, table.csv,
plots/*.png, report.md and a self-contained report.html (plots embedded as base64 PNG, no
scripts, no external resources). Nothing is run; ``disagg report DIR`` calls this alone.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from disagg.experiments.compare import prefix
from disagg.experiments.compare.data import (
    TARGET_ATTAINMENT,
    SavedRun,
    capacity,
    comparison_table,
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


def build_report(out_dir: Path) -> Report:
    """Load the runs and compute rows, tables, capacities and plots (writes nothing)."""
    runs = load_runs(out_dir)
    rows = [run_row(r, Path(out_dir)) for r in runs]
    cap = capacity(rows)
    columns = summary_columns(rows)
    report = Report(runs[0].summary["experiment"], rows, build_rows(rows, columns),
                    build_rows(rows, REGRET_COLUMNS), cap, columns=columns)
    report.plots = _plots(runs, rows, cap)
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


def _setup(report: Report) -> list[str]:
    names = list(dict.fromkeys(r["policy"] for r in report.rows))
    repeats = sorted({r["repeat"] for r in report.rows})
    seeds = sorted({r["seed"] for r in report.rows})
    first = report.rows[0]
    return [
        f"Experiment `{report.experiment}` on the {first['engine']} engine (dilation "
        f"{first['dilation']:g}): router policies {', '.join(f'`{n}`' for n in names)}; request rates "
        f"{', '.join(f'{r:g}' for r in sorted({r['rate_per_s'] for r in report.rows}))} req/s; "
        f"{len(repeats)} repeat(s) per cell, seeds {', '.join(map(str, seeds))}. Every policy sees "
        "the identical request stream at each (rate, repeat).",
    ]


def _capacity_lines(report: Report) -> list[str]:
    lines = ["| policy | capacity (req/s) |", "|---|---|"]
    for p, c in report.capacity.items():
        lines.append(f"| {p} | {'below the lowest rate tested' if c is None else f'{c:g}'} |")
    return lines


TABLE_NOTE = ("Mean ± half-width of the 95% confidence interval over repeats (Student t, n − 1 "
              "degrees of freedom; no interval with one repeat). **Bold**: the best policy at that "
              "rate (lowest latency and cost; highest goodput, attainment and throughput); "
              "utilization is not marked, since neither direction is better at a fixed offered load.")
REGRET_NOTE = ("Router regret of a request: how much earlier its first token would have come had "
               "the router sent it to the prefill unit that was best in hindsight, with every other "
               "request's recorded schedule held fixed (the request runs alone in the earliest idle "
               "span that fits it). See docs/compare.md.")
CAPACITY_NOTE = (f"Capacity: the highest tested rate whose mean SLO attainment is at least "
                 f"{100 * TARGET_ATTAINMENT:.0f}%, every lower tested rate included.")


def markdown(report: Report) -> str:
    """report.md: setup, capacity, summary table, regret, plots (linked from plots/)."""
    parts = [f"# Policy comparison: {report.experiment}", "", *_setup(report), "",
             "## Capacity", "", CAPACITY_NOTE, "", *_capacity_lines(report), "",
             "## Summary", "", TABLE_NOTE, "", to_markdown(report.table, report.columns),
             "## Router regret", "", REGRET_NOTE, "", to_markdown(report.regret, REGRET_COLUMNS)]
    header, body = prefix.unit_hit_table(report.rows)
    if body:
        parts += ["## Prefix cache per unit", "", prefix.NOTE, "", prefix.to_markdown(header, body)]
    parts += ["## Plots", ""]
    for name, title in PLOT_TITLES.items():
        parts += [f"### {title}", "", f"![{title}](plots/{name})", ""]
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td:first-child{text-align:left}
td.best{font-weight:bold;background:#e3f4e3}img{max-width:100%;border:1px solid #eee}
p.note{font-size:13px;color:#555}"""


def html_page(report: Report) -> str:
    """report.html: the same content, one file, plots inline as data: URIs."""
    e = html.escape
    cap = "".join(f"<tr><td>{e(p)}</td><td>{'below the lowest rate tested' if c is None else f'{c:g}'}"
                  f"</td></tr>" for p, c in report.capacity.items())
    imgs = "".join(
        f"<h3>{e(title)}</h3><img alt=\"{e(title)}\" src=\"data:image/png;base64,"
        f"{base64.b64encode(report.plots[name]).decode()}\">" for name, title in PLOT_TITLES.items())
    setup = "".join(f"<p>{e(s).replace('`', '')}</p>" for s in _setup(report))
    header, body = prefix.unit_hit_table(report.rows)
    hits = (f"<h2>Prefix cache per unit</h2><p class=\"note\">{e(prefix.NOTE)}</p>"
            f"{prefix.to_html(header, body)}") if body else ""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Policy comparison: {e(report.experiment)}</title><style>{_CSS}</style></head>"
            f"<body><h1>Policy comparison: {e(report.experiment)}</h1>{setup}"
            f"<h2>Capacity</h2><p class=\"note\">{e(CAPACITY_NOTE)}</p>"
            f"<table><thead><tr><th>policy</th><th>capacity (req/s)</th></tr></thead>"
            f"<tbody>{cap}</tbody></table>"
            f"<h2>Summary</h2><p class=\"note\">{e(TABLE_NOTE).replace('**', '')}</p>"
            f"{to_html(report.table, report.columns)}"
            f"<h2>Router regret</h2><p class=\"note\">{e(REGRET_NOTE)}</p>"
            f"{to_html(report.regret, REGRET_COLUMNS)}{hits}<h2>Plots</h2>{imgs}</body></html>\n")


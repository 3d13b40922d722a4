"""The comparison's summary table: per (rate, policy), mean ± 95% CI over repeats of the headline
metrics, with the best policy per column at each rate marked. One model, rendered as Markdown,
HTML, CSV and a rich table.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from disagg.experiments.compare.data import Estimate, cell_estimates


@dataclass(frozen=True)
class Column:
    """A summary.json (or regret) key shown as ``label``: value x ``scale``, ``digits`` decimals;
    ``better`` says which direction wins (None: neither, so nothing is marked)."""

    key: str
    label: str
    scale: float = 1.0
    digits: int = 1
    better: Literal["min", "max"] | None = "min"


COLUMNS = (
    Column("median_ttft_ms", "TTFT p50 ms"), Column("p99_ttft_ms", "TTFT p99 ms"),
    Column("median_tpot_ms", "TPOT p50 ms", digits=2), Column("p99_tpot_ms", "TPOT p99 ms", digits=2),
    Column("median_e2el_ms", "E2E p50 ms", digits=0), Column("p99_e2el_ms", "E2E p99 ms", digits=0),
    Column("request_goodput", "goodput req/s", digits=2, better="max"),
    Column("slo_attainment", "attainment %", scale=100, better="max"),
    Column("output_throughput", "throughput tok/s", digits=0, better="max"),
    Column("prefill_utilization", "prefill util %", scale=100, better=None),
    Column("decode_utilization", "decode util %", scale=100, better=None),
    Column("colocated_utilization", "colocated util %", scale=100, better=None),
    Column("cost_per_million_tokens", "$ per M tok", digits=3),
    Column("energy_per_token_j", "J per tok", digits=2),
)
PREFIX_COLUMNS = (  # shown only when some run had prefix caching on
    Column("prefix_hit_rate", "prefix hit %", scale=100, better="max"),
    Column("cached_token_share", "cached tokens %", scale=100, better="max"),
)
REGRET_COLUMNS = (
    Column("mean_regret_ms", "mean regret ms", digits=2), Column("p99_regret_ms", "p99 regret ms", digits=2),
    Column("regret_share", "requests with regret %", scale=100),
)


def summary_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """The summary table's columns: ``COLUMNS``, plus ``PREFIX_COLUMNS`` when a run has them."""
    if any(r.get("prefix_hit_rate") is not None for r in rows):
        return COLUMNS + PREFIX_COLUMNS
    return COLUMNS


@dataclass(frozen=True)
class Cell:
    """One table value: the estimate, its text, and whether it is the best at its rate."""

    estimate: Estimate
    text: str
    best: bool


@dataclass(frozen=True)
class Row:
    policy: str
    rate_per_s: float
    cells: tuple[Cell, ...]


def _text(e: Estimate, col: Column) -> str:
    if e.mean is None:
        return "n/a"
    mean = f"{e.mean * col.scale:,.{col.digits}f}"
    return mean if e.ci is None else f"{mean} ± {e.ci * col.scale:,.{col.digits}f}"


def _best(values: list[float | None], better: str | None) -> float | None:
    """The winning value, or None when there is no contest (fewer than two values, all equal)."""
    present = [v for v in values if v is not None]
    if better is None or len(present) < 2 or max(present) - min(present) <= 1e-12 * max(
            1.0, abs(max(present))):
        return None
    return min(present) if better == "min" else max(present)


def build_rows(rows: list[dict[str, Any]], columns: tuple[Column, ...] = COLUMNS) -> list[Row]:
    """Table rows ordered by rate, then policy (in the rows' order)."""
    ests = {c.key: cell_estimates(rows, c.key) for c in columns}
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    out = []
    for rate in sorted({r["rate_per_s"] for r in rows}):
        best = [_best([ests[c.key][(p, rate)].mean for p in policies], c.better) for c in columns]
        for p in policies:
            cells = []
            for c, b in zip(columns, best, strict=True):
                e = ests[c.key][(p, rate)]
                win = b is not None and e.mean is not None and abs(e.mean - b) <= 1e-12 * max(1.0, abs(b))
                cells.append(Cell(e, _text(e, c), win))
            out.append(Row(p, rate, tuple(cells)))
    return out


def to_markdown(table: list[Row], columns: tuple[Column, ...] = COLUMNS, who: str = "policy") -> str:
    """A Markdown table (first column headed ``who``: policy or cluster); best values in bold."""
    head = [who, "rate req/s", *(c.label for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [f"**{c.text}**" if c.best else c.text for c in r.cells]
        lines.append("| " + " | ".join([r.policy, f"{r.rate_per_s:.4g}", *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_html(table: list[Row], columns: tuple[Column, ...] = COLUMNS, who: str = "policy") -> str:
    """An HTML table (first column headed ``who``); best values get class ``best``."""
    head = "".join(f"<th>{html.escape(h)}</th>"
                   for h in [who, "rate req/s", *(c.label for c in columns)])
    body = []
    for r in table:
        tds = "".join(f'<td class="best">{html.escape(c.text)}</td>' if c.best
                      else f"<td>{html.escape(c.text)}</td>" for c in r.cells)
        body.append(f"<tr><td>{html.escape(r.policy)}</td><td>{r.rate_per_s:.4g}</td>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_csv(table: list[Row], columns: tuple[Column, ...] = COLUMNS) -> str:
    """Unscaled means and CI half-widths: policy, rate_per_s, n, <key>_mean, <key>_ci95, ..."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["policy", "rate_per_s", "n", *(f"{c.key}_{s}" for c in columns for s in ("mean", "ci95"))])
    for r in table:
        n = max(c.estimate.n for c in r.cells)
        values = [("" if v is None else repr(v)) for c in r.cells for v in (c.estimate.mean, c.estimate.ci)]
        w.writerow([r.policy, f"{r.rate_per_s:g}", n, *values])
    return buf.getvalue()


def to_rich(table: list[Row], title: str, columns: tuple[Column, ...] = COLUMNS) -> list[Table]:
    """One rich table per rate, metrics down and policies across (narrow enough for a terminal
    with a few policies); best values bold green."""
    out = []
    for rate in dict.fromkeys(r.rate_per_s for r in table):
        rows = [r for r in table if r.rate_per_s == rate]
        t = Table(title=f"{title} — {rate:.4g} req/s")
        t.add_column("metric", no_wrap=True)
        for r in rows:
            t.add_column(escape(r.policy), justify="right")
        for i, c in enumerate(columns):
            t.add_row(c.label, *(f"[bold green]{r.cells[i].text}[/]" if r.cells[i].best
                                 else r.cells[i].text for r in rows))
        out.append(t)
    return out

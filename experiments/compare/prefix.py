"""The comparison report's prefix-cache table: each prefill unit's hit rate per (policy, rate),
averaged over repeats — how evenly a router spreads (or concentrates) cache hits. Only for runs
with prefix caching on (``prefix_cache_by_unit`` in summary.json, JSON text in the rows)."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

NOTE = ("Prefix-cache hit rate of each prefill unit (leading 512-token blocks found / blocks "
        "looked up), mean over repeats; see docs/prefix_caching.md.")


def unit_hit_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, body) of the per-unit hit-rate table; empty when no run had prefix caching."""
    per_cell: dict[tuple[str, float], list[dict[str, Any]]] = {}
    units: dict[str, None] = {}
    for r in rows:
        raw = r.get("prefix_cache_by_unit")
        if not raw:
            continue
        by_unit = json.loads(raw) if isinstance(raw, str) else raw
        units.update(dict.fromkeys(by_unit))
        per_cell.setdefault((r["policy"], r["rate_per_s"]), []).append(by_unit)
    if not per_cell:
        return [], []
    names = sorted(units, key=lambda n: int(n.rpartition("-")[2]))
    body = []
    for (policy, rate), runs in per_cell.items():
        cells = []
        for n in names:
            rates = [u[n]["hit_rate"] for u in runs if n in u and u[n]["hit_rate"] is not None]
            cells.append(f"{100 * float(np.mean(rates)):.1f}" if rates else "n/a")
        body.append([policy, f"{rate:.4g}", *cells])
    return ["policy", "rate req/s", *(f"{n} hit %" for n in names)], body


def to_markdown(header: list[str], body: list[list[str]]) -> str:
    """The table as Markdown."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_html(header: list[str], body: list[list[str]]) -> str:
    """The table as HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

"""Tables as plain data, printed in the form that stays readable where they go.

A :class:`Tabular` is a title, column names and rows of strings. :func:`print_tables` prints a
list of them as

- ``table``: Rich tables (cells wrap to their content; nothing is cut to "sour…");
- ``plain``: one block per row, ``column: value`` on its own line (readable at any width);
- ``csv``: per table a ``# title`` line, then RFC 4180 CSV with a header row;
- ``json``: a list of ``{"title", "rows": [{column: value}]}``.

``auto`` (the default of ``disagg catalog`` / ``calibrate``) chooses ``table`` on a terminal wide
enough for the tables' minimum width, ``plain`` on a narrower terminal and ``csv`` when the output
is piped or redirected.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

FORMATS = ("auto", "table", "plain", "csv", "json")


@dataclass(frozen=True)
class Tabular:
    """One table: ``title``, ``columns`` (names) and ``rows`` (one string per column)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def to_rich(t: Tabular) -> Table:
    """The table as a Rich table whose cells wrap (the first column never does)."""
    table = Table(title=t.title)
    for i, col in enumerate(t.columns):
        table.add_column(col, no_wrap=i == 0, overflow="fold")
    for row in t.rows:
        table.add_row(*row)
    return table


def to_plain(t: Tabular) -> str:
    """The table as blocks of ``column: value`` lines, one block per row."""
    width = max((len(c) for c in t.columns), default=0)
    blocks = [f"== {t.title} =="]
    for row in t.rows:
        lines = [f"{c:<{width}} : {v}".replace("\n", "; ") for c, v in zip(t.columns, row)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_csv(t: Tabular) -> str:
    """``# title`` then the table as CSV with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(t.columns)
    writer.writerows(t.rows)
    return f"# {t.title}\n{buf.getvalue()}"


def to_json(tables: Sequence[Tabular]) -> str:
    """The tables as JSON: a list of ``{"title", "rows": [{column: value}]}``."""
    return json.dumps([{"title": t.title, "rows": [dict(zip(t.columns, r)) for r in t.rows]}
                       for t in tables], indent=1)


def choose_format(requested: str, console: Console, tables: Sequence[Tabular]) -> str:
    """``requested`` unless it is ``auto``: then csv when not a terminal, plain when the terminal
    is narrower than some table's :func:`readable_width`, else table."""
    if requested != "auto":
        return requested
    if not console.is_terminal:
        return "csv"
    need = max((readable_width(t) for t in tables), default=0)
    return "table" if need <= console.width else "plain"


def readable_width(t: Tabular) -> int:
    """Characters a Rich table of ``t`` needs so that no word is broken: per column its longest
    word (header or cell; words beyond 24 characters, such as URLs, may fold), plus 3 per column
    for borders and padding and 1 for the last border."""
    def longest(text: str) -> int:
        return max((len(w) for w in text.split()), default=0)
    widths = [min(24, max(longest(c), *(longest(r[i]) for r in t.rows)) if t.rows else longest(c))
              for i, c in enumerate(t.columns)]
    return sum(widths) + 3 * len(widths) + 1


def print_tables(console: Console, tables: Sequence[Tabular], fmt: str = "auto") -> str:
    """Print ``tables`` in ``fmt`` (see the module docstring); returns the format used."""
    chosen = choose_format(fmt, console, tables)
    if chosen == "json":
        console.out(to_json(tables), highlight=False)
        return chosen
    for t in tables:
        if chosen == "table":
            console.print(to_rich(t))
        else:
            text = to_plain(t) if chosen == "plain" else to_csv(t)
            console.out(text, highlight=False)
            if chosen == "plain":
                console.out("")
    return chosen

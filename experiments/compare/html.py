"""The HTML every report page shares (comparison, line-up, plan): one self-contained page with a
readable style, tables as ``<table>``, notes, and plots inline as PNG data URIs (no scripts, no
external resources)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1.5em 2em;
max-width:1320px;color:#1d2330;line-height:1.45;background:#fff}
h1{font-size:1.7em;margin:.2em 0 .4em}h2{font-size:1.25em;margin:1.6em 0 .4em;
border-bottom:2px solid #e4e8ef;padding-bottom:.2em}h3{font-size:1.02em;margin:1.2em 0 .3em;color:#3b4656}
p{margin:.4em 0}p.lead{font-size:1.05em;color:#333}p.note{font-size:13px;color:#5a6472}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:13px;font-variant-numeric:tabular-nums;
display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d5dae2;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#eef1f6;font-weight:600}td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafbfc}td.best{font-weight:700;background:#e2f3e4}
td.text,th.text{text-align:left;white-space:normal}
.plots{display:flex;flex-direction:column;gap:1.2em}
figure{margin:0}figcaption{font-weight:600;margin:.3em 0}
img{max-width:100%;border:1px solid #e4e8ef;border-radius:4px}
.kpi{display:flex;gap:1em;flex-wrap:wrap;margin:.8em 0}
.kpi div{border:1px solid #d5dae2;border-radius:6px;padding:.5em 1em;background:#f7f9fc}
.kpi b{display:block;font-size:1.3em}"""

e = html.escape


def page(title: str, body: str) -> str:
    """A whole HTML document titled ``title`` with ``body`` (HTML) under an ``<h1>``."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>{body}</body></html>\n")


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
          left: Sequence[int] = (0,)) -> str:
    """A table of plain strings (escaped); the columns at indices ``left`` (text) left-aligned,
    the others (numbers) right-aligned."""
    def cell(tag: str, i: int, c: str) -> str:
        return f"<{tag} class=\"text\">{e(c)}</{tag}>" if i in left else f"<{tag}>{e(c)}</{tag}>"
    head = "".join(cell("th", i, c) for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def note(text: str) -> str:
    """A small explanatory paragraph (Markdown bold markers dropped)."""
    return f"<p class=\"note\">{e(text).replace('**', '')}</p>"


def figures(plots: Sequence[tuple[str, bytes]]) -> str:
    """Titled PNG figures in a grid."""
    figs = "".join(f"<figure><figcaption>{e(title)}</figcaption><img alt=\"{e(title)}\" "
                   f"src=\"data:image/png;base64,{base64.b64encode(png).decode()}\"></figure>"
                   for title, png in plots)
    return f"<div class=\"plots\">{figs}</div>"


def kpis(items: Sequence[tuple[str, str]]) -> str:
    """Headline figures as boxes: (label, value) pairs."""
    return "<div class=\"kpi\">" + "".join(f"<div>{e(label)}<b>{e(value)}</b></div>"
                                           for label, value in items) + "</div>"

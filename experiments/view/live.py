"""The live dashboard as a pure function: ``render(snapshot) -> renderable``.

``snapshot`` is one collector snapshot (``Collector.snapshot()`` plus ``now_s``, its ``live`` part
built by ``actors/components/live_aggregate.py``) with a ``run`` dict added by the runner: ``experiment``,
``engine``, ``dilation``, ``horizon_s`` (emu seconds of arrivals). Nothing here reads a clock or
talks to an engine, so tests render snapshots into a recording console and check the plain text.
Pools with more than ``MAX_ROWS`` units (and fabrics with more links) show min / median / max and a
small histogram per metric instead of one row per unit.

What matters comes first: progress, then SLO attainment, goodput, TTFT/TPOT and the request
counters, the throughput sparkline, then the pools and the fabric. ``detail`` (see
:data:`DETAILS`) trims the pools and the fabric to one line each when the terminal is small;
``experiments/view/live_frame.py`` picks the most detailed level that fits the terminal.
Extra snapshot keys: ``starting_s`` (wall seconds waited for the engine's first report: Ray
starting) and ``final`` (the frame drawn from the run's summary: see live_frame.final_snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from disagg.experiments.view.live_tasks import task_line

MAX_ROWS = 16  # beyond this many units (or links), a pool is shown as aggregate rows
DETAILS = (0, 1, 2, 3)
"""Levels of detail: 3 everything (header in a box, a row per unit or aggregate rows, a row per
link); 2 the fabric as one line; 1 the header without its box; 0 each pool as one line too."""
SPARK = "▁▂▃▄▅▆▇█"
GB = 1e9


def bar(fraction: float, width: int = 12) -> str:
    """A text bar ``███░░░`` for a fraction in [0, 1] (clipped)."""
    f = min(1.0, max(0.0, fraction))
    full = int(round(f * width))
    return "█" * full + "░" * (width - full)


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, scaled from 0 to the largest value."""
    top = max(values, default=0.0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in values)


def histogram(values: Sequence[float], bins: int = 8) -> str:
    """Units per bin between min and max, drawn as a sparkline (``bins`` characters)."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12:
        return SPARK[-1] + SPARK[0] * (bins - 1)
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return sparkline([float(c) for c in counts])


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:,.1f}"


def _header(snap: dict[str, Any], boxed: bool = True) -> RenderableType:
    run, live = snap.get("run", {}), snap.get("live", {})
    now, horizon = float(snap.get("now_s", 0.0)), float(run.get("horizon_s", 0.0))
    frac = now / horizon if horizon > 0 else 0.0
    phase = "done" if snap.get("final") else "arrivals" if frac < 1 else "draining"
    lg = live.get("loadgen", {})
    line1 = (f"{run.get('experiment', '?')} · {run.get('engine', '?')} engine · "
             f"dilation {run.get('dilation', 1.0):g} · lag p99 {_ms(live.get('lag_p99_s', 0.0))} ms")
    line2 = (f"emu {now:.2f} s of {horizon:g} s {bar(frac, 16)} {100 * min(frac, 1):3.0f} % "
             f"{phase} · arrived {lg.get('submitted', 0)}/{lg.get('total', '?')}")
    if "starting_s" in snap:
        what = "starting Ray…" if run.get("engine") == "ray" else "starting…"
        line2 = f"{what} {snap['starting_s']:.0f} s (the run starts once the cluster is up)"
    if not boxed:
        return Text(f"disagg live · {line1}\n{line2}", overflow="ellipsis", no_wrap=True)
    return Panel(Text(f"{line1}\n{line2}", overflow="ellipsis", no_wrap=True),
                 title="disagg live", title_align="left")


def _unit_table(title: str, units: list[dict[str, Any]],
                columns: list[tuple[str, Callable[[dict[str, Any]], str]]], first: str = "unit"
                ) -> RenderableType:
    t = Table(title=title, title_justify="left", expand=False, pad_edge=False,
              box=box.SIMPLE_HEAD, show_edge=False)
    t.add_column(first, no_wrap=True)
    for label, _ in columns:
        t.add_column(label, justify="right", no_wrap=True)
    for u in units:
        t.add_row(u["name"], *(fn(u) for _, fn in columns))
    return t


def _aggregate_table(title: str, units: list[dict[str, Any]],
                     metrics: list[tuple[str, Callable[[dict[str, Any]], float]]],
                     noun: str = "units") -> RenderableType:
    t = Table(pad_edge=False, box=box.SIMPLE_HEAD, show_edge=False)
    for label, justify in (("metric", "left"), ("min", "right"), ("median", "right"),
                           ("max", "right"), ("histogram", "left")):
        t.add_column(label, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for label, fn in metrics:
        values = [float(fn(u)) for u in units]
        t.add_row(label, f"{min(values):,.1f}", f"{float(np.median(values)):,.1f}",
                  f"{max(values):,.1f}", histogram(values))
    return Group(Text(f"{title} — {len(units)} {noun}: min / median / max, histogram over {noun}",
                      no_wrap=True, overflow="ellipsis"), t)


def _pool(title: str, units: list[dict[str, Any]],
          columns: list[tuple[str, Callable[[dict[str, Any]], str]]],
          metrics: list[tuple[str, Callable[[dict[str, Any]], float]]]) -> RenderableType:
    if not units:
        return Text(f"{title}: no report yet")
    if len(units) > MAX_ROWS:
        return _aggregate_table(title, units, metrics)
    return _unit_table(title, units, columns)


def _prefill(units: list[dict[str, Any]]) -> RenderableType:
    columns = [
        ("queue", lambda u: str(u.get("queue", 0))),
        ("batch tokens", lambda u: f"{u.get('batch_tokens', 0):,}"),
        ("utilization", lambda u: f"{bar(u['utilization'])} {100 * u['utilization']:3.0f} %"),
        ("tokens/s", lambda u: f"{u['tokens_per_s']:,.0f}"),
    ]
    metrics = [
        ("queue depth", lambda u: u.get("queue", 0)),
        ("batch tokens", lambda u: u.get("batch_tokens", 0)),
        ("utilization %", lambda u: 100 * u["utilization"]),
        ("tokens/s", lambda u: u["tokens_per_s"]),
    ]
    if any("prefix_hit_rate" in u for u in units):  # prefix caching on
        columns.append(("prefix hit", lambda u: _hit_text(u.get("prefix_hit_rate"))))
        metrics.append(("prefix hit %", lambda u: 100 * (u.get("prefix_hit_rate") or 0.0)))
    title = "prefill pool" + _overall_hits(units)
    return _pool(title, units, columns, metrics)


def _hit_text(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:3.0f} %"


def _overall_hits(units: list[dict[str, Any]]) -> str:
    """`` · prefix hit NN % of blocks`` over the pool's caches, or nothing without caches."""
    looked = sum(u.get("prefix_lookup_blocks", 0) for u in units)
    if not any("prefix_hit_rate" in u for u in units):
        return ""
    hits = sum(u.get("prefix_hit_blocks", 0) for u in units)
    return f" · prefix hit {_hit_text(hits / looked if looked else None)} of blocks"


def _kv_fraction(u: dict[str, Any]) -> float:
    cap = float(u.get("kv_capacity_bytes", 0.0))
    return float(u.get("kv_used_bytes", 0.0)) / cap if cap > 0 else 0.0


def _decode(units: list[dict[str, Any]]) -> RenderableType:
    columns = [
        ("running", lambda u: str(u.get("running", 0))),
        ("pending", lambda u: str(u.get("pending", 0))),
        ("KV used of capacity", lambda u: f"{bar(_kv_fraction(u))} "
         f"{u.get('kv_used_bytes', 0) / GB:,.1f} / {u.get('kv_capacity_bytes', 0) / GB:,.1f} GB"),
        ("tokens/s", lambda u: f"{u['tokens_per_s']:,.0f}"),
    ]
    metrics = [
        ("running batch", lambda u: u.get("running", 0)),
        ("pending", lambda u: u.get("pending", 0)),
        ("KV used %", lambda u: 100 * _kv_fraction(u)),
        ("tokens/s", lambda u: u["tokens_per_s"]),
    ]
    return _pool("decode pool", units, columns, metrics)


def _colocated(units: list[dict[str, Any]]) -> RenderableType:
    columns = [
        ("queue", lambda u: str(u.get("queue", 0))),
        ("prefilling", lambda u: str(u.get("prefilling", 0))),
        ("decoding", lambda u: str(u.get("running", 0))),
        ("KV used of capacity", lambda u: f"{bar(_kv_fraction(u))} "
         f"{u.get('kv_used_bytes', 0) / GB:,.1f} / {u.get('kv_capacity_bytes', 0) / GB:,.1f} GB"),
        ("utilization", lambda u: f"{bar(u['utilization'])} {100 * u['utilization']:3.0f} %"),
        ("tokens/s", lambda u: f"{u['tokens_per_s']:,.0f}"),
    ]
    metrics = [
        ("queue depth", lambda u: u.get("queue", 0)),
        ("decoding batch", lambda u: u.get("running", 0)),
        ("KV used %", lambda u: 100 * _kv_fraction(u)),
        ("utilization %", lambda u: 100 * u["utilization"]),
        ("tokens/s", lambda u: u["tokens_per_s"]),
    ]
    return _pool("colocated pool (prefill + decode)", units, columns, metrics)


def _fabric(fabric: dict[str, Any]) -> RenderableType:
    head = Text(f"fabric: {fabric.get('active', 0)} active transfers · "
                f"{fabric.get('bytes_moved', 0.0) / GB:,.2f} GB moved")
    links = fabric.get("links", [])
    if not links:
        return head

    def gbps(u: dict[str, Any]) -> float:
        return float(u["bytes_per_s"]) * 8 / GB

    def share(u: dict[str, Any]) -> float:
        cap = float(u["capacity_bytes_per_s"])
        return float(u["bytes_per_s"]) / cap if cap > 0 else 0.0

    columns = [("Gb/s", lambda u: f"{gbps(u):,.1f}"),
               ("of capacity", lambda u: f"{bar(share(u))} {100 * share(u):3.0f} %"),
               ("GB moved", lambda u: f"{u['bytes_moved'] / GB:,.2f}")]
    metrics: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("Gb/s", gbps), ("of capacity %", lambda u: 100 * share(u)),
        ("GB moved", lambda u: float(u["bytes_moved"]) / GB)]
    table = _aggregate_table("fabric links", links, metrics, "links") if len(links) > MAX_ROWS else \
        _unit_table("links", links, columns, "link")
    return Group(head, table)


def _slo_and_counts(snap: dict[str, Any]) -> RenderableType:
    slo = snap.get("live", {}).get("slo", {})
    att = slo.get("attainment")
    submitted = snap.get("live", {}).get("loadgen", {}).get("submitted", 0)
    over = "the whole run" if snap.get("final") else f"last {slo.get('window', 0)} completed"
    cancelled = f" · cancelled {snap['cancelled']}" if snap.get("cancelled") else ""
    return Text("\n".join([
        f"SLO attainment {'n/a' if att is None else f'{100 * att:.1f} %'} ({over}) · "
        f"goodput {slo.get('goodput_per_s', 0.0):,.2f} req/s",
        f"TTFT p50 {_ms(slo.get('ttft_p50_s'))} ms, p99 {_ms(slo.get('ttft_p99_s'))} ms · "
        f"TPOT p50 {_ms(slo.get('tpot_p50_s'))} ms, p99 {_ms(slo.get('tpot_p99_s'))} ms",
        f"requests: submitted {submitted} · completed {snap.get('completed', 0)} · "
        f"rejected {snap.get('rejected', 0)} · failed {snap.get('failed', 0)}{cancelled}",
    ]), overflow="fold")


def _throughput(live: dict[str, Any]) -> RenderableType:
    history = live.get("throughput", [])
    now = history[-1] if history else 0.0
    return Text(f"decode throughput {sparkline(history)} {now:,.0f} tok/s")


def _pool_line(title: str, units: list[dict[str, Any]], key: str, what: str) -> str:
    """One pool in one line: units, the summed in-flight count ``key`` and tokens/s, mean
    utilization."""
    if not units:
        return f"{title}: no report yet"
    util = float(np.mean([u["utilization"] for u in units]))
    return (f"{title}: {len(units)} units · {what} {sum(int(u.get(key, 0)) for u in units)} · "
            f"util {100 * util:3.0f} % · {sum(u['tokens_per_s'] for u in units):,.0f} tok/s")


def _pool_lines(units: dict[str, list[dict[str, Any]]]) -> RenderableType:
    if units.get("colocated"):
        return Text(_pool_line("colocated", units["colocated"], "running", "decoding"),
                    no_wrap=True, overflow="ellipsis")
    return Text(_pool_line("prefill", units.get("prefill", []), "queue", "queued") + "\n"
                + _pool_line("decode", units.get("decode", []), "running", "running"),
                no_wrap=True, overflow="ellipsis")


def _fabric_line(fabric: dict[str, Any]) -> RenderableType:
    links = fabric.get("links", [])
    busiest = max((float(u["bytes_per_s"]) / float(u["capacity_bytes_per_s"]) for u in links
                   if float(u["capacity_bytes_per_s"]) > 0), default=0.0)
    more = f" · {len(links)} links, busiest at {100 * busiest:.0f} %" if links else ""
    return Text(f"fabric: {fabric.get('active', 0)} active transfers · "
                f"{fabric.get('bytes_moved', 0.0) / GB:,.2f} GB moved{more}",
                no_wrap=True, overflow="ellipsis")


def render(snapshot: dict[str, Any], detail: int = 3) -> RenderableType:
    """The dashboard for one snapshot (its keys: the module docstring) at level ``detail`` (one
    of :data:`DETAILS`): progress, SLOs and counters, throughput, then pools and fabric."""
    live = snapshot.get("live", {})
    units = live.get("units", {})
    if detail == 0:
        pools: list[RenderableType] = [_pool_lines(units)]
    elif units.get("colocated"):
        pools = [_colocated(units["colocated"])]
    else:
        pools = [_prefill(units.get("prefill", [])), _decode(units.get("decode", []))]
    fabric = _fabric(live.get("fabric", {})) if detail >= 3 else _fabric_line(live.get("fabric", {}))
    return Group(_header(snapshot, boxed=detail >= 2), _slo_and_counts(snapshot),
                 *task_line(live.get("loadgen", {})), _throughput(live), *pools, fabric)

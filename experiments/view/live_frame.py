"""Fit the live dashboard to the terminal, and its last frame.

:func:`fit` renders a snapshot at the most detailed level of ``live.DETAILS`` whose height fits
the terminal (lines counted by rendering into a plain console of the terminal's width), so an
80 x 24 terminal shows progress, SLOs, counters and one line per pool, and a larger one adds a
row per unit and per link. :func:`final_snapshot` turns the last live snapshot into the frame
that agrees with the run's summary: its counts, SLO figures and goodput, and every unit idle.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, RenderableType

from disagg.experiments.view.live import DETAILS, render

IDLE_KEYS = ("queue", "batch_tokens", "running", "pending", "prefilling")


def height(renderable: RenderableType, width: int) -> int:
    """Lines ``renderable`` takes on a console ``width`` characters wide."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    return len(console.render_lines(renderable, console.options, pad=False))


def fit(snapshot: dict[str, Any], width: int, rows: int) -> RenderableType:
    """The most detailed dashboard that fits ``width`` x ``rows`` (one row kept for the cursor);
    the least detailed one if none fits."""
    for detail in sorted(DETAILS, reverse=True):
        frame = render(snapshot, detail)
        if height(frame, width) <= rows - 1:
            return frame
    return render(snapshot, min(DETAILS))


def final_snapshot(last: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The frame after the run: ``last`` (the latest live snapshot) with the summary's request
    counts, SLO attainment, goodput and TTFT/TPOT percentiles (whole run), every unit idle (0
    tokens/s, nothing queued or running), no active transfer, the fabric's total bytes, and the
    clock at the run's end (summary ``duration_s``, emu s)."""
    live = dict(last.get("live", {}))
    units = {kind: [{**u, **dict.fromkeys(IDLE_KEYS, 0), "tokens_per_s": 0.0, "utilization": 0.0}
                    for u in pool] for kind, pool in live.get("units", {}).items()}
    fabric = dict(live.get("fabric", {}))
    fabric.update(active=0, bytes_moved=summary.get("fabric_bytes", fabric.get("bytes_moved", 0)),
                  links=[{**u, "bytes_per_s": 0.0} for u in fabric.get("links", [])])

    def s(key: str) -> float | None:
        value = summary.get(key)
        return None if value is None else float(value) / 1e3

    slo = {"window": summary["completed"], "attainment": summary.get("slo_attainment"),
           "goodput_per_s": summary.get("request_goodput") or 0.0,
           "ttft_p50_s": s("median_ttft_ms"), "ttft_p99_s": s("p99_ttft_ms"),
           "tpot_p50_s": s("median_tpot_ms"), "tpot_p99_s": s("p99_tpot_ms")}
    loadgen = {**live.get("loadgen", {}), "submitted": summary["submitted"],
               "total": summary["submitted"]}
    live.update(units=units, fabric=fabric, slo=slo, loadgen=loadgen,
                throughput=[*live.get("throughput", []), 0.0])
    end_s = max(float(last.get("now_s", 0.0)), float(summary.get("duration_s") or 0.0))
    return {**last, "live": live, "final": True, "now_s": end_s, "completed": summary["completed"],
            "rejected": summary["rejected"], "failed": summary["failed"],
            "cancelled": summary.get("cancelled", 0)}

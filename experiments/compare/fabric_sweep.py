"""Sweep the decode-side host NIC bandwidth (and layer-wise streaming) of one experiment on the
virtual engine, and print one Markdown row per point: how TTFT, TPOT and transfer times react,
and the hand-off (first token -> decode start) that layer-wise streaming shortens.

    python -m disagg.experiments.compare.fabric_sweep experiments/fabric_contention.toml \
        [--nic-gbps 25 50 100 ...] [--layer-wise both|on|off] [--pool decode|prefill]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from disagg.cluster.config import load_experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.checks import check_experiment
from disagg.experiments.run import run_experiment

DEFAULT_NIC_GBPS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
COLUMNS = (
    ("nic Gbps", None), ("layer-wise", None), ("completed", "completed"),
    ("TTFT p50 ms", "median_ttft_ms"), ("TTFT p99 ms", "p99_ttft_ms"),
    ("TPOT p50 ms", "median_tpot_ms"), ("TPOT p99 ms", "p99_tpot_ms"),
    ("transfer p50 ms", "p50_transfer_ms"), ("transfer p99 ms", "p99_transfer_ms"),
    ("handoff p50 ms", "p50_handoff_ms"), ("handoff p99 ms", "p99_handoff_ms"),
    ("peak link util", "peak_link_utilization"), ("SLO attainment", "slo_attainment"),
    ("goodput req/s", "request_goodput"),
)


def sweep_point(path: str, pool: str, nic_gbps: float, layer_wise: bool) -> dict[str, Any]:
    """Run ``path`` on the virtual engine with one pool's host NIC and layer-wise set: its summary
    plus ``p50/p99_handoff_ms``, first token to decode start (transfer and admission wait)."""

    exp = load_experiment(path, {
        "experiment.engine": "virtual", f"{pool}.host_nic_gbps": nic_gbps,
        "fabric.layer_wise": layer_wise,
    })
    check_experiment(exp)
    result = run_experiment(exp)
    rows = result.tables["requests"].to_pylist()
    gaps = [r["decode_start_s"] - r["first_token_s"] for r in rows if r["status"] == "completed"
            and r["decode_start_s"] is not None]
    out = dict(result.summary)
    for p in (50, 99):
        out[f"p{p}_handoff_ms"] = float(np.percentile(gaps, p)) * 1e3 if gaps else None
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def markdown_rows(points: list[tuple[float, bool, dict[str, Any]]]) -> list[str]:
    """A Markdown table: one row per (NIC Gbps, layer-wise, summary)."""
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for nic, layer_wise, summary in points:
        cells = [_cell(nic), _cell(layer_wise)] + [_cell(summary.get(k)) for _, k in COLUMNS[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the sweep, print the table; exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m disagg.experiments.compare.fabric_sweep")
    parser.add_argument("experiment")
    parser.add_argument("--nic-gbps", type=float, nargs="+", default=list(DEFAULT_NIC_GBPS))
    parser.add_argument("--layer-wise", choices=["both", "on", "off"], default="off")
    parser.add_argument("--pool", choices=["decode", "prefill"], default="decode")
    args = parser.parse_args(argv)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.layer_wise]
    points = []
    try:
        for nic in args.nic_gbps:
            for lw in modes:
                points.append((nic, lw, sweep_point(args.experiment, args.pool, nic, lw)))
    except ConfigError as e:
        print(f"fabric_sweep: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(markdown_rows(points)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

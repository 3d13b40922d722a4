"""What does the live view cost? The same experiment with the live view off and on, interleaved.

Live on means what ``disagg run --live`` does: every component reports its state to the collector
every 0.25 wall s when it changed, the driver polls the collector every 0.25 s, and a rich Live
dashboard renders 4 times a second into a terminal console (here writing to /dev/null).

* virtual engine: emulated requests completed per CPU second and per wall second of this process
  (the engine's own throughput; the dashboard renders in a thread of the same process, so this is
  the worst case). On a shared machine wall time is noisy; CPU time is the steadier measure.
* ray engine (dilation 1): emulated output tokens/s and emulator lag p50 / p99 (the fidelity the
  live view must not disturb).

Usage: python benchmarks/live_overhead.py [--engine virtual|ray|both] [--reps N]
Prints a markdown table (medians over the repetitions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from disagg.cluster.config import Experiment, load_experiment
from disagg.experiments.run import assemble, execute
from disagg.experiments.view.runner import live_interval, run_progress

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def _one(exp: Experiment, live: bool) -> dict[str, float]:
    with open(os.devnull, "w") as sink:
        console = Console(file=sink, force_terminal=live, width=120)
        started, cpu = time.perf_counter(), time.process_time()
        with run_progress(console, exp, live) as progress:
            raw = execute(exp, progress=progress, live_s=live_interval(live))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    s = assemble(exp, raw).summary
    return {"wall_s": wall, "req_per_wall_s": s["completed"] / wall, "cpu_s": cpu,
            "req_per_cpu_s": s["completed"] / cpu,
            "output_tok_per_s": s["output_throughput"], "lag_p50_ms": s["lag_p50_ms"],
            "lag_p99_ms": s["lag_p99_ms"], "completed": s["completed"]}


def measure(exp: Experiment, reps: int) -> dict[bool, list[dict[str, float]]]:
    """``reps`` runs with the live view off and on, alternating so that load drifts cancel."""
    out: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for i in range(reps):
        for live in ((False, True) if i % 2 == 0 else (True, False)):
            out[live].append(_one(exp, live))
    return out


def _row(label: str, runs: dict[bool, list[dict[str, float]]], key: str) -> str:
    off = statistics.median(r[key] for r in runs[False])
    on = statistics.median(r[key] for r in runs[True])
    change = f"{100 * (on - off) / off:+.1f} %" if off else "n/a"
    spread = " | ".join(f"{min(r[key] for r in runs[v]):,.2f}–{max(r[key] for r in runs[v]):,.2f}"
                        for v in (False, True))
    return f"| {label} | {off:,.2f} | {on:,.2f} | {change} | {spread} |"


def report(title: str, runs: dict[bool, list[dict[str, Any]]], keys: list[tuple[str, str]]) -> str:
    lines = [f"**{title}** ({len(runs[False])} runs each, medians)", "",
             "| metric | live off | live on | change | range off | range on |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [_row(label, runs, key) for label, key in keys]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["virtual", "ray", "both"], default="both")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--virtual-duration", type=float, default=300.0)
    parser.add_argument("--ray-duration", type=float, default=20.0)
    args = parser.parse_args()
    if args.engine in ("virtual", "both"):
        exp = load_experiment(QUICKSTART, {"experiment.engine": "virtual",
                                           "experiment.duration_s": args.virtual_duration})
        runs = measure(exp, args.reps)
        print(report(f"virtual engine, quickstart, {args.virtual_duration:g} emu s", runs,
                     [("CPU s (this process, render thread included)", "cpu_s"),
                      ("requests completed per CPU s", "req_per_cpu_s"), ("wall s", "wall_s"),
                      ("requests completed per wall s", "req_per_wall_s")]))
        print()
    if args.engine in ("ray", "both"):
        import ray

        exp = load_experiment(QUICKSTART, {"experiment.engine": "ray",
                                           "experiment.duration_s": args.ray_duration})
        from disagg.actors.engines.ray_engine import local_resources

        ray.init(resources=local_resources(exp), include_dashboard=False, logging_level="WARNING")
        try:
            runs = measure(exp, args.reps)
        finally:
            ray.shutdown()
        print(report(f"ray engine, quickstart, {args.ray_duration:g} emu s, dilation 1", runs,
                     [("output tokens/s (emulated)", "output_tok_per_s"),
                      ("driver CPU s", "cpu_s"),
                      ("lag p50 ms", "lag_p50_ms"), ("lag p99 ms", "lag_p99_ms")]))


if __name__ == "__main__":
    main()

"""Where the whole Mooncake run's CPU goes: the engine (the event loop over 12,031 requests) against
everything around it (interpreter, imports, config, trace, results files, summary, exit).

    python benchmarks/run_phases.py --rounds 3

Each figure is a fresh child process's own CPU (user + system, from ``os.wait4``), median of the
rounds: the whole ``disagg run`` (as ``benchmarks/vs_peers.py`` runs it), the same run on the
trace's first 10 s (38 requests: the fixed cost), the engine alone (``execute`` of the same
experiment with the garbage collector set as the command line sets it, timed inside its child
from before it starts to after it returns: the trace read, the run's build and its event loop; no
imports, no results files), and a bare interpreter. Prints a Markdown table (docs/performance.md, block
"run-phases": ``python benchmarks/regen_docs.py --only run-phases``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "mooncake_conv.toml"
WHOLE = {"workload.start_s": 0.0, "workload.end_s": 4000.0, "experiment.duration_s": 4000.0}
SLICE = {"workload.start_s": 0.0, "workload.end_s": 10.0, "experiment.duration_s": 10.0}
ENGINE = (  # run in a child: the engine's CPU, the requests it ran
    "import json, sys, time\n"
    "from disagg.cluster.config import load_experiment\n"
    "from disagg.experiments.cli.gc_rules import run_gc\n"
    "from disagg.experiments.run import execute\n"
    "exp = load_experiment(sys.argv[1], json.loads(sys.argv[2]))\n"
    "cpu = time.process_time()\n"
    "with run_gc():  # the collector set as the command line sets it for a run\n"
    "    raw = execute(exp)\n"
    "print(json.dumps([time.process_time() - cpu, len(raw['requests'])]))\n"
)


def run_argv(overrides: dict[str, float], out: Path | str) -> list[str]:
    """The ``disagg`` arguments of one whole virtual run of the experiment with ``overrides``,
    results to ``out``."""
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v:g}")]
    return ["run", str(EXPERIMENT), "--engine", "virtual", "--no-live", "--force", "--out",
            str(out), *sets]


def run_cpu(overrides: dict[str, float], out: Path) -> float:
    """CPU s of one whole ``disagg run`` of the experiment with ``overrides``."""
    cpu, _ = run_child([str(Path(sys.executable).with_name("disagg")), *run_argv(overrides, out)])
    return cpu


def run_child(args: list[str]) -> tuple[float, str]:
    """A child's CPU s (from its rusage) and its standard output."""
    before = os.times()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} … exited {proc.returncode}: "
                           f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    cpu = (after.children_user - before.children_user) + (after.children_system
                                                         - before.children_system)
    return cpu, proc.stdout


def json_child(args: list[str]) -> tuple[float, Any]:
    """A child's CPU s (:func:`run_child`) and the JSON of its standard output's last line."""
    cpu, out = run_child(args)
    return cpu, json.loads(out.strip().splitlines()[-1])


def measure(rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds of the four figures (CPU s each) and the engine's request count."""
    got: dict[str, list[float]] = {"whole": [], "slice": [], "engine": [], "bare": [],
                                   "requests": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            got["whole"].append(run_cpu(WHOLE, Path(tmp) / "whole"))
            got["slice"].append(run_cpu(SLICE, Path(tmp) / "slice"))
            _, (engine_cpu, requests) = json_child([sys.executable, "-c", ENGINE, str(EXPERIMENT),
                                                    json.dumps(WHOLE)])
            got["engine"].append(engine_cpu)
            got["requests"].append(requests)
            got["bare"].append(run_child([sys.executable, "-c", "pass"])[0])
            print(f"round {i + 1}: whole {got['whole'][-1]:.2f} s, slice {got['slice'][-1]:.2f} s,"
                  f" engine {engine_cpu:.2f} s, bare {got['bare'][-1]:.2f} s", file=sys.stderr)
    return got


def table(got: dict[str, list[float]], rounds: int) -> str:
    """The Markdown table of medians."""
    med = {k: statistics.median(v) for k, v in got.items()}
    n = int(med["requests"])
    rows = [
        "| part of `disagg run … --engine virtual` (whole Mooncake trace) | CPU s (median) | share |",
        "|---|---:|---:|",
        f"| whole process | {med['whole']:.2f} | 100 % |",
        f"| the engine: the trace read, the run's build and its event loop over {n:,} requests "
        f"({med['engine'] / n * 1e6:.0f} µs per request) "
        f"| {med['engine']:.2f} | {med['engine'] / med['whole'] * 100:.0f} % |",
        f"| everything else: interpreter, imports, config, results files, summary, exit "
        f"| {med['whole'] - med['engine']:.2f} | {(1 - med['engine'] / med['whole']) * 100:.0f} % |",
        f"| of it, a bare interpreter (`python -c pass`) | {med['bare']:.2f} | |",
        f"| the same command on the trace's first 10 s (the fixed cost) | {med['slice']:.2f} | |",
    ]
    return (f"`python benchmarks/run_phases.py --rounds {rounds}` (fresh child processes, "
            f"interleaved rounds; each figure the child's own CPU):\n\n" + "\n".join(rows))


def rounds_parser(doc: str, default: int) -> argparse.ArgumentParser:
    """The command line of a script of interleaved rounds: ``--rounds`` (its ``default``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=default,
                        help="interleaved rounds (median taken)")
    return parser


def print_rounds(parser: argparse.ArgumentParser, rounds: int,
                 measure: Callable[[int], Any], table: Callable[[Any, int], str]) -> None:
    """Print ``table`` of ``measure``'s ``rounds`` (exit 2 below one), and how long they took."""
    if rounds < 1:
        parser.error(f"--rounds: value {rounds} is not >= 1")
    start = time.perf_counter()
    got = measure(rounds)
    print(table(got, rounds))
    print(f"measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def main() -> None:
    parser = rounds_parser(__doc__, 3)
    print_rounds(parser, parser.parse_args().rounds, measure, table)


if __name__ == "__main__":
    main()

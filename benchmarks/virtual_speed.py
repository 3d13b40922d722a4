"""How many emulated requests the virtual engine runs per wall second, and how its cost grows.

Every point runs in a fresh child process (so peak memory is that run's), on the quickstart
experiment (Llama-3.1-70B, 4 x Trainium2 prefill units, 4 x CS-3 decode units, lognormal prompts
and outputs) with the unit counts and arrival rate changed:

* **speed**: the quickstart cluster (2 + 1 units, 4 req/s), 16 + 4 units at 80 % prefill load,
  64 + 16 units at 80 % prefill load;
* **requests**: wall time against requests (1k -> 100k) on the quickstart cluster;
* **units**: wall time against units (4 -> 256, prefill : decode = 3 : 1) at 80 % prefill load
  and a fixed 20 emu s of arrivals (so requests grow with units).

"80 % prefill load": arrivals at 0.8 x prefill units / mean prefill time of one prompt, the mean
taken by the performance model over 20,000 prompts drawn from the workload (the same formula as
the engine's; batching makes the real busy fraction lower, which the table reports).

Each point reports requests, the engine's wall and CPU seconds (``execute``: the run), the wall
seconds to assemble the results tables and summary (``assemble``), requests per engine wall second
and per whole-run wall second, and the child's peak resident memory (MB).

    python benchmarks/virtual_speed.py [--only speed,requests,units] [--max-requests 1000000]
        [--max-units 256] [--baseline-python OTHER_VENV/bin/python] [--markdown]

Rows print as each point finishes, as plain aligned text, or with ``--markdown`` as the markdown
tables (with a heading each) that docs/performance.md shows, so one command regenerates them.
After the requests and units tables a line says whether cost is linear: the engine's CPU
microseconds per request at the smallest and the largest point (flat = linear) and peak memory
at both ends.

With ``--baseline-python``, each point also runs under that interpreter (an install of another
commit, e.g. a temporary ``git worktree`` of the base commit with its own venv), right before the
current code, and a speed-up row follows: ratios from one run, as both saw the same machine load.
The child only needs ``disagg.experiments.run.execute``/``assemble``, so any commit works.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from disagg.cluster.config import load_experiment
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.workload.plan import SloTargets, plan_requests
from disagg.experiments.run import assemble, execute

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def prefill_rate_for_load(load: float, prefill_units: int) -> float:
    """Arrivals per emu second that keep ``prefill_units`` busy ``load`` of the time, one prompt
    per batch, by the performance model over prompts drawn from the quickstart workload."""
    exp = load_experiment(QUICKSTART, {"experiment.duration_s": 5000.0})
    requests = plan_requests(exp.workload, SloTargets(1.0, 0.02), 5000.0,
                             np.random.default_rng(0))[:20000]
    mean_s = float(np.mean([prefill_time([r.prompt_tokens], exp.model, exp.prefill.hardware,
                                         exp.prefill.chips_per_unit).seconds for r in requests]))
    return load * prefill_units / mean_s


def run_point(prefill: int, decode: int, rate: float, duration_s: float) -> dict[str, Any]:
    """Run one configuration in this process; the engine and assembly timed separately."""
    exp = load_experiment(QUICKSTART, {
        "experiment.engine": "virtual", "experiment.duration_s": duration_s,
        "prefill.units": prefill, "decode.units": decode, "workload.rate_per_s": rate,
    })
    wall0, cpu0 = time.perf_counter(), time.process_time()
    raw = execute(exp)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    result = assemble(exp, raw)
    wall2 = time.perf_counter()
    requests = result.tables["requests"].num_rows
    return {
        "prefill": prefill, "decode": decode, "rate_per_s": rate, "requests": requests,
        "completed": result.summary.get("completed"), "engine_wall_s": wall1 - wall0,
        "engine_cpu_s": cpu1 - cpu0, "assemble_wall_s": wall2 - wall1,
        "req_per_engine_s": requests / (wall1 - wall0), "req_per_wall_s": requests / (wall2 - wall0),
        "prefill_utilization": result.summary.get("prefill_utilization"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_child(prefill: int, decode: int, rate: float, duration_s: float,
             python: str = sys.executable) -> dict[str, Any]:
    """:func:`run_point` in a fresh interpreter, so peak memory is its own; ``python`` may be
    another install's interpreter (the baseline)."""
    args = json.dumps([prefill, decode, rate, duration_s])
    out = subprocess.run([python, __file__, "--point", args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


COLUMNS = ("point", "units", "req/s", "requests", "engine wall s", "engine CPU s", "assemble s",
           "req per engine s", "req per wall s", "CPU us per req", "prefill util", "peak MB")
WIDTHS = tuple(max(len(c), 9) for c in COLUMNS[1:])  # plain text; the first column is wider


class Table:
    """Prints rows as they come, as markdown (``markdown``) or aligned plain text."""

    def __init__(self, title: str, markdown: bool) -> None:
        self.markdown = markdown
        if markdown:
            print(f"\n#### {title}\n\n| " + " | ".join(COLUMNS) + " |\n|---|---|"
                  + "---:|" * (len(COLUMNS) - 2), flush=True)
        else:
            print(f"\n{title}\n" + self._line(COLUMNS), flush=True)

    def _line(self, cells: tuple[str, ...]) -> str:
        if self.markdown:
            return "| " + " | ".join(cells) + " |"
        rest = (c.rjust(w) for c, w in zip(cells[1:], WIDTHS, strict=True))
        return "  ".join((cells[0].ljust(26), *rest))

    def row(self, label: str, r: dict[str, Any]) -> None:
        """One point's row."""
        util = r["prefill_utilization"]
        print(self._line((
            label, f"{r['prefill']} + {r['decode']}", f"{r['rate_per_s']:.1f}",
            f"{r['requests']:,}", f"{r['engine_wall_s']:.2f}", f"{r['engine_cpu_s']:.2f}",
            f"{r['assemble_wall_s']:.2f}", f"{r['req_per_engine_s']:,.0f}",
            f"{r['req_per_wall_s']:,.0f}", f"{cpu_us_per_request(r):,.0f}",
            "n/a" if util is None else f"{util:.2f}", f"{r['peak_rss_mb']:.0f}")), flush=True)

    def ratios(self, label: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """The speed-up row of a before/after pair (engine wall, engine CPU, whole-run rate)."""
        cells = [""] * len(COLUMNS)
        cells[0] = f"{label}: speed-up"
        cells[4] = f"x{before['engine_wall_s'] / after['engine_wall_s']:.1f}"
        cells[5] = f"x{before['engine_cpu_s'] / after['engine_cpu_s']:.1f}"
        cells[8] = f"x{after['req_per_wall_s'] / before['req_per_wall_s']:.1f}"
        print(self._line(tuple(cells)), flush=True)


def cpu_us_per_request(r: dict[str, Any]) -> float:
    """The engine's CPU microseconds per request of a point."""
    return 1e6 * r["engine_cpu_s"] / max(r["requests"], 1)


def measure(table: Table, label: str, point: tuple[int, int, float, float],
            baseline: str | None) -> dict[str, Any]:
    """Print the row of one point and return it; with a baseline interpreter, its row first
    (run just before, so both see the same machine load) and the ratios."""
    if baseline is None:
        after = in_child(*point)
        table.row(label, after)
        return after
    before = in_child(*point, python=baseline)
    after = in_child(*point)
    table.row(f"{label}, before", before)
    table.row(f"{label}, after", after)
    table.ratios(label, before, after)
    return after


def linearity(points: list[dict[str, Any]], what: str) -> str:
    """One line on how cost grows over ``points`` (smallest first): engine CPU per request at
    both ends (equal = linear in requests) and peak memory at both ends."""
    if len(points) < 2:
        return ""
    first, last = points[0], points[-1]
    a, b = cpu_us_per_request(first), cpu_us_per_request(last)
    return (f"\nFrom {first['requests']:,} to {last['requests']:,} requests ({what}): engine CPU "
            f"per request {a:,.0f} -> {b:,.0f} us (x{b / a:.2f}; 1.00 = linear), peak memory "
            f"{first['peak_rss_mb']:.0f} -> {last['peak_rss_mb']:.0f} MB.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="speed,requests,units", help="which tables")
    ap.add_argument("--max-requests", type=int, default=1_000_000,
                    help="largest point of the requests table (1k, 10k, ... up to this)")
    ap.add_argument("--max-units", type=int, default=256,
                    help="largest point of the units table (4, 16, ... up to this)")
    ap.add_argument("--baseline-python", help="also run each point with this interpreter (an "
                    "install of the commit to compare against), just before this one")
    ap.add_argument("--markdown", action="store_true",
                    help="print markdown tables (as in docs/performance.md)")
    ap.add_argument("--point", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        print(json.dumps(run_point(*json.loads(args.point))))
        return
    run_tables(set(args.only.split(",")), args)


def run_tables(only: set[str], args: argparse.Namespace) -> None:
    """The speed, requests and units tables (those in ``only``)."""
    md, base = args.markdown, args.baseline_python
    per_prefill = prefill_rate_for_load(0.8, 1)
    print(f"80 % prefill load = {per_prefill:.3f} req/s per prefill unit.", flush=True)
    if "speed" in only:
        table = Table("Speed on three cluster sizes", md)
        for label, p, d, rate, dur in [("quickstart", 2, 1, 4.0, 1000.0),
                                       ("16 + 4 at 80 %", 16, 4, 16 * per_prefill, 100.0),
                                       ("64 + 16 at 80 %", 64, 16, 64 * per_prefill, 30.0)]:
            measure(table, label, (p, d, rate, dur), base)
    if "requests" in only:
        table = Table("Wall time against requests (quickstart cluster, 4 req/s)", md)
        points, n = [], 1000
        while n <= args.max_requests:
            points.append(measure(table, f"{n:,} requests", (2, 1, 4.0, n / 4.0), base))
            n *= 10
        print(linearity(points, "quickstart cluster"), flush=True)
    if "units" in only:
        table = Table("Wall time against units (prefill : decode = 3 : 1, 80 % prefill load, "
                      "20 emu s)", md)
        points, units = [], 4
        while units <= args.max_units:
            p, d = 3 * units // 4, units // 4
            points.append(measure(table, f"{units} units", (p, d, p * per_prefill, 20.0), base))
            units *= 4
        print(linearity(points, f"4 to {units // 4} units"), flush=True)


if __name__ == "__main__":
    main()

"""A robust line-up as Markdown for docs/compare.md's generated block.

    python benchmarks/robust_lineup_table.py EXP_A EXP_B ... --equal cost --robust-space FILE
        [--rates 4,8] [--duration S]

Runs ``disagg compare EXP_A EXP_B ... --equal E --robust --robust-space FILE`` (embedded Ray,
a fresh temporary folder) and prints the command, the decision lines it prints, and the line-up
at the default point and the break-even values from its robust.json / robust.parquet.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import pyarrow.parquet as pq

from disagg.experiments.cli.main import main as disagg


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown (a failing command fails loudly)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment", nargs="+")
    p.add_argument("--equal", required=True)
    p.add_argument("--robust-space", required=True)
    p.add_argument("--rates")
    p.add_argument("--duration")
    args = p.parse_args(argv)
    shown = ["compare", *args.experiment, "--equal", args.equal]
    shown += ["--rates", args.rates] if args.rates else []
    shown += ["--duration", args.duration] if args.duration else []
    shown += ["--robust", "--robust-space", args.robust_space]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "robust"
        buf = io.StringIO()
        started = time.time()
        with redirect_stdout(buf):
            code = disagg([*shown, "--out", str(out)])
        wall = time.time() - started
        if code != 0:
            print(buf.getvalue(), file=sys.stderr)
            return code
        report = json.loads((out / "robust.json").read_text())
        rows = [r for r in pq.read_table(out / "robust.parquet").to_pylist() if r["point"] == -1]
    runs = next(line for line in buf.getvalue().splitlines() if line.startswith("robust: "))
    print(f"`disagg {' '.join(shown)}` ({wall:.0f} s wall, {runs.split(';')[0][8:]}):\n")
    print("```\n" + "\n".join(report["summary"]) + "\n```\n")
    print("| cluster (default assumptions) | units | $/h | capacity, req/s | goodput at the "
          "highest rate, req/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cluster']} | {r['units']} | {r['usd_per_hour']:.2f} | "
              f"{r['capacity_per_s']:.4g} | {r['goodput_per_s']:.4g} |")
    print("\n| assumption | range | break-even | winner at low | winner at high |\n"
          "|---|---|---|---|---|")
    for b in report["break_evens"]:
        value = "none in range" if b["value"] is None else f"{b['value']:.4g}"
        print(f"| {b['dimension']} | {b['low']:.4g} - {b['high']:.4g} | {value} | "
              f"{b['winner_at_low']} | {b['winner_at_high']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

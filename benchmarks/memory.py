"""Does a run's peak memory grow with its number of requests? Peak RSS of virtual-engine runs of
the quickstart cluster (Llama-3.1-70B, 2 x 4 Trainium2 prefill, 1 x 4 CS-3 decode, 4 req/s) with
the duration scaled to ~10k, ~100k and ~1M requests.

Each run is a child process (``disagg run experiments/quickstart.toml --engine virtual --no-live
--duration D --out DIR``); its peak resident set size comes from ``os.wait4``'s rusage of that
child alone (``ru_maxrss``, KiB on Linux). Results stream into the output folder as the run goes
(``docs/benchmarks.md``, "Memory"), so the target is peak RSS at 1M requests within 2x of 10k.

Usage: python benchmarks/memory.py [--requests 10000 100000 1000000] [--keep DIR]
Prints one markdown table row per run as it finishes (whole process: start-up, run, writing the
results; CPU microseconds per request flat down the table = linear in requests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
EXP = ROOT / "experiments" / "quickstart.toml"
RATE_PER_S = 4.0  # quickstart.toml's workload.rate_per_s


def run_one(requests: int, out: Path) -> tuple[float, float, float, int]:
    """(peak RSS MiB, wall s, CPU s, rows written) of one child run of ~``requests`` requests."""
    duration_s = requests / RATE_PER_S
    cmd = [sys.executable, "-m", "disagg.experiments.cli.main", "run", str(EXP), "--engine",
           "virtual", "--no-live", "--duration", f"{duration_s:g}", "--out", str(out)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"run of {requests} requests failed ({proc.returncode}): {err[-500:]}")
    rows = pq.ParquetFile(out / "requests.parquet").metadata.num_rows
    return usage.ru_maxrss / 1024, wall_s, usage.ru_utime + usage.ru_stime, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="keep the results folders under this folder")
    args = parser.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="disagg-memory-"))
    print("| requests (target) | rows written | peak RSS (MiB) | CPU s | wall s | requests per wall s "
          "| CPU us per request |")
    print("|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    try:
        for n in args.requests:
            rss_mib, wall_s, cpu_s, rows = run_one(n, base / f"run-{n}")
            print(f"| {n:,} | {rows:,} | {rss_mib:.0f} | {cpu_s:.1f} | {wall_s:.1f} | "
                  f"{rows / wall_s:,.0f} | {1e6 * cpu_s / rows:,.0f} |", flush=True)
            if args.keep is None:
                shutil.rmtree(base / f"run-{n}", ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

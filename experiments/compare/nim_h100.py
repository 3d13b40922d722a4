"""NVIDIA's measured H100 serving table against a closed-loop colocated run.

The reference (calibration.md, "NVIDIA H100 under concurrency"): NIM 1.8.0 serving
Llama-3.3-70B-Instruct on 2 x H100 80 GB, FP8, TP2, AIPerf with 5,000 prompt / 500 output tokens at
fixed concurrency (docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance). The emulated side is
``experiments/nim_h100.toml`` with ``workload.users`` = the concurrency and zero think time, on the
virtual engine. Printed: TTFT, ITL and total output tok/s, published and emulated, with the error.
The emulated TTFT and ITL are means over the requests of the steady state — sent after the first
request ends (every user sends its first request at t = 0, a burst the published table, measured
over a long run, does not show) and ended before the users stop sending (``duration_s``; after
it fewer users remain); ITL is each request's TPOT, (last token - first token) / (output
tokens - 1); tok/s is the whole run's output throughput.

    python -m disagg.experiments.compare.nim_h100 [--users 1,5,25,50,100,200] [--duration 120]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "nim_h100.toml"
SOURCE = "NVIDIA NIM 1.8.0 benchmarks, docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance"
# concurrency -> (TTFT ms, ITL ms, total output tok/s), copied from calibration.md
NIM_TABLE: dict[int, tuple[float, float, float]] = {
    1: (406.77, 18.58, 51.67), 5: (546.7, 21.83, 218.48), 25: (688.69, 38.75, 623.4),
    50: (834.51, 59.73, 814.37), 100: (7_996.25, 92.91, 917.26), 200: (61_680.22, 93.06, 920.54),
}
METRICS = ("TTFT ms", "ITL ms", "tok/s")


@dataclass(frozen=True)
class NimRow:
    """One concurrency: published and emulated (TTFT ms, ITL ms, output tok/s)."""

    users: int
    published: tuple[float, float, float]
    emulated: tuple[float, float, float]

    @property
    def errors(self) -> tuple[float, float, float]:
        """Relative error of each emulated figure against the published one."""
        e = [m / p - 1 for m, p in zip(self.emulated, self.published, strict=True)]
        return (e[0], e[1], e[2])


def emulate(users: int, duration_s: float, overrides: dict[str, Any] | None = None) -> NimRow:
    """Run the NIM experiment with ``users`` concurrent users for ``duration_s`` emu s."""
    exp = load_experiment(EXPERIMENT, {"workload.users": users, "experiment.duration_s": duration_s,
                                       "experiment.engine": "virtual", **(overrides or {})})
    result = run_experiment(exp)
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    warm_s = min(r["last_token_s"] for r in rows)  # the opening burst: every user sends at t = 0
    steady = [r for r in rows if r["arrival_s"] >= warm_s
              and r["last_token_s"] <= exp.experiment.duration_s] or rows
    ttft_ms = 1e3 * sum(r["ttft_s"] for r in steady) / len(steady)
    itl_ms = 1e3 * sum(r["tpot_s"] for r in steady) / len(steady)
    return NimRow(users, NIM_TABLE[users],
                  (ttft_ms, itl_ms, float(result.summary["output_throughput"])))


def format_rows(rows: list[NimRow]) -> str:
    """A Markdown table: per concurrency, published / emulated / error for each metric."""
    head = "| users | " + " | ".join(f"{m} NIM | {m} disagg | err" for m in METRICS) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(METRICS))]
    for r in rows:
        cells = [f"{p:,.2f} | {e:,.2f} | {100 * err:+.1f} %"
                 for p, e, err in zip(r.published, r.emulated, r.errors, strict=True)]
        lines.append(f"| {r.users} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", default=",".join(str(u) for u in NIM_TABLE))
    ap.add_argument("--duration", type=float, default=120.0, help="emu s of arrivals per run")
    ap.add_argument("--kv-bytes", type=float, default=None,
                    help="model.kv_bytes_per_element (1 = FP8 KV, the file's; 2 = BF16 KV)")
    args = ap.parse_args()
    over = {} if args.kv_bytes is None else {"model.kv_dtype": None,
                                             "model.kv_bytes_per_element": args.kv_bytes}
    rows = [emulate(int(u), args.duration, over) for u in args.users.split(",")]
    print(f"reference: {SOURCE}\nemulated: {EXPERIMENT.name} {over}, virtual engine, "
          f"{args.duration:g} emu s per concurrency\n")
    print(format_rows(rows))


if __name__ == "__main__":
    main()

"""Sweep the request rate on experiments/batch_forming.toml with fcfs and batch_forming batching.

    python benchmarks/batch_forming_tradeoff.py [--rates 5,60,120,160]

Prints TTFT, prefill busy-time MFU, busy fraction and throughput; numbers in docs/policies.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments" / "batch_forming.toml"
POLICIES = {
    "fcfs": {"name": "fcfs", "max_batch_tokens": 4096},
    "batch_forming": {"name": "batch_forming", "max_batch_tokens": 4096, "max_wait_s": 0.05},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="5,60,120,160")
    args = ap.parse_args()
    print(f"{'rate/s':>6s} {'batching':14s} {'TTFT p50':>9s} {'TTFT p99':>9s} {'busy MFU':>8s} "
          f"{'busy':>5s} {'req/s':>6s} {'attain':>6s}")
    for rate in (float(r) for r in args.rates.split(",")):
        for name, spec in POLICIES.items():
            exp = load_experiment(EXP, {"workload.rate_per_s": rate,
                                        "policies.prefill_batching": spec})
            s = run_experiment(exp).summary
            print(f"{rate:6.0f} {name:14s} {s['median_ttft_ms']:9.1f} {s['p99_ttft_ms']:9.1f} "
                  f"{s['prefill_busy_mfu']:8.3f} {s['prefill_utilization']:5.2f} "
                  f"{s['request_throughput']:6.1f} {s['slo_attainment']:6.3f}", flush=True)


if __name__ == "__main__":
    main()

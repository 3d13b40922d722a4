"""Run experiments/policy_shootout.toml once per router policy and print the comparison.

    python benchmarks/policy_shootout.py --engine virtual
    python benchmarks/policy_shootout.py --engine ray --policies round_robin,slo_aware --duration 30

Numbers measured on this machine are in docs/policies.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments" / "policy_shootout.toml"
ALL = "round_robin,random,least_loaded,power_of_two,kv_aware,slo_aware"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["virtual", "ray"], default="virtual")
    ap.add_argument("--policies", default=ALL)
    ap.add_argument("--duration", type=float, default=None, help="emu seconds of arrivals")
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--markdown", action="store_true",
                    help="print the docs/policies.md table (goodput, attainment, rejected, TTFT)")
    ap.add_argument("--headline", action="store_true",
                    help="print the README's one-sentence headline (round_robin against slo_aware)")
    args = ap.parse_args()
    if args.markdown or args.headline:
        markdown(args, {"experiment.engine": args.engine,
                        **({"experiment.duration_s": args.duration} if args.duration else {})})
        return
    over = {"experiment.engine": args.engine}
    if args.duration:
        over["experiment.duration_s"] = args.duration
    if args.rate:
        over["workload.rate_per_s"] = args.rate
    print(f"engine {args.engine}; {EXP.name} with {over}")
    print(f"{'policy':14s} {'goodput/s':>9s} {'attain':>7s} {'rejected':>8s} {'TTFT p50':>9s} "
          f"{'TTFT p99':>9s} {'TPOT p99':>9s} {'lag p99':>8s} {'late':>5s} {'wall s':>7s}")
    for policy in args.policies.split(","):
        t = time.time()
        s = run_experiment(load_experiment(EXP, {**over, "policies.router": policy})).summary
        print(f"{policy:14s} {s['request_goodput']:9.2f} {s['slo_attainment']:7.3f} "
              f"{s['rejected']:8d} {s['median_ttft_ms']:9.1f} {s['p99_ttft_ms']:9.1f} "
              f"{s['p99_tpot_ms']:9.3f} {s['lag_p99_ms']:8.2f} {s['late_decisions']:5d} "
              f"{time.time() - t:7.1f}", flush=True)


def markdown(args: argparse.Namespace, over: dict[str, object]) -> None:
    """The policies' table (``--markdown``) or the README sentence (``--headline``)."""
    runs = {p: run_experiment(load_experiment(EXP, {**over, "policies.router": p})).summary
            for p in args.policies.split(",")}
    if args.headline:
        rr, slo = runs["round_robin"], runs["slo_aware"]
        print(f"`slo_aware` keeps {100 * slo['slo_attainment']:.0f}% of requests within SLO where "
              f"round-robin keeps {100 * rr['slo_attainment']:.0f}%")
        return
    ray = args.engine == "ray"
    extra = " TPOT p99 ms | lag p99 ms | late decisions |" if ray else ""
    print("| policy | goodput req/s | SLO attainment | rejected | TTFT p50 ms | TTFT p99 ms |"
          + extra)
    print("|---|---|---|---|---|---|" + "---|" * (3 if ray else 0))
    for p, s in runs.items():
        cells = (f" {s['p99_tpot_ms']:.2f} | {s['lag_p99_ms']:,.0f} | {s['late_decisions']} |"
                 if ray else "")
        print(f"| {p} | {s['request_goodput']:.2f} | {s['slo_attainment']:.3f} | {s['rejected']} | "
              f"{s['median_ttft_ms']:,.0f} | {s['p99_ttft_ms']:,.0f} |" + cells)
    if ray:
        print(f"\nRay engine, dilation 1, embedded local Ray; 1-minute load average "
              f"{os.getloadavg()[0]:.1f} when the last run ended (the machine's other load "
              "shows in lag and late decisions, docs/performance.md).")

if __name__ == "__main__":
    main()

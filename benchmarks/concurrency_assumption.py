"""How a headline result moves across the decode concurrency assumption (docs/calibration.md).

    python benchmarks/concurrency_assumption.py [--rate 8] [--exponents 0,0.25,0.5,1]

Runs experiments/quickstart.toml on the virtual engine with enough prefill (8 Trainium2 units) to
load the decode side, outputs of median 300 tokens, and the decode unit's
``concurrency_exponent`` swept: first a pipeline of 4 CS-3, then 16 Trainium2 chips (TP16) as
the decode unit. Prints per-user decode speed, throughput, SLO attainment, $/M and J per token.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXP = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
DECODE = {"cs3": 4, "trainium2": 16}


def run(rate: float, hardware: str, exponent: float) -> dict[str, Any]:
    """One virtual-engine run of the loaded quickstart; its summary."""
    exp = load_experiment(EXP, {
        "experiment.engine": "virtual", "workload.rate_per_s": rate, "prefill.units": 8,
        "workload.output_tokens": {"kind": "lognormal", "median": 300, "sigma": 0.6,
                                   "max": 2048},
        "decode.hardware": {"name": hardware, "concurrency_exponent": exponent},
        "decode.chips_per_unit": DECODE[hardware],
    })
    return run_experiment(exp).summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=8.0)
    ap.add_argument("--exponents", default="0,0.25,0.5,1")
    args = ap.parse_args()
    print("| decode unit | exponent | TPOT p50 ms | TPOT p99 ms | tok/s per user (p50) | "
          "output tok/s | SLO attainment | $ per M output tok | J per output tok |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for hardware, chips in DECODE.items():
        for exponent in (float(x) for x in args.exponents.split(",")):
            s = run(args.rate, hardware, exponent)
            print(f"| {chips} x {hardware} | {exponent:g} | {s['median_tpot_ms']:.2f} | "
                  f"{s['p99_tpot_ms']:.2f} | {1e3 / s['median_tpot_ms']:,.0f} | "
                  f"{s['output_throughput']:,.0f} | {100 * s['slo_attainment']:.1f} % | "
                  f"{s['cost_per_million_tokens']:,.2f} | {s['energy_per_token_j']:,.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()

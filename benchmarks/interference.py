"""Colocated against disaggregated H100 serving: the interference tables of docs/colocated.md.

    python benchmarks/interference.py

First the same constant arrivals (2 req/s, 10 s, 200 output tokens) with short and long prompts
on one 8 x H100 colocated server (experiments/gpu_colocated.toml) against one 8 x H100 prefill +
one 8 x H100 decode server (experiments/gpu_baseline.toml): mean TPOT. Then both files as
shipped (4 x 8 H100 either way, seed 1): TPOT p99, TTFT p50, completed and SLO attainment.
Virtual engine; prints Markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
FILES = {"colocated": "gpu_colocated.toml", "disaggregated": "gpu_baseline.toml"}
ONE_SERVER = {"colocated": {"colocated.units": 1},
              "disaggregated": {"prefill.units": 1, "decode.units": 1}}


def summary(kind: str, over: dict[str, Any]) -> dict[str, Any]:
    """One virtual-engine run of the kind's shipped file with ``over``; its summary."""
    exp = load_experiment(EXPERIMENTS / FILES[kind], {"experiment.engine": "virtual", **over})
    return run_experiment(exp).summary


def main() -> None:
    print("| prompt tokens | colocated mean TPOT ms | disaggregated mean TPOT ms |")
    print("|---:|---:|---:|")
    for prompt in (500, 6000):
        over = {"experiment.duration_s": 10.0, "workload.arrivals": {"kind": "constant"},
                "workload.rate_per_s": 2.0,
                "workload.prompt_tokens": {"kind": "fixed", "value": prompt},
                "workload.output_tokens": {"kind": "fixed", "value": 200}}
        tpot = {k: summary(k, {**over, **ONE_SERVER[k]})["mean_tpot_ms"] for k in FILES}
        print(f"| {prompt:,} | {tpot['colocated']:.2f} | {tpot['disaggregated']:.2f} |")
    print("\nAs shipped (`disagg run experiments/gpu_colocated.toml --engine virtual` against "
          "`disagg run experiments/gpu_baseline.toml --engine virtual`):\n")
    print("| cluster | TPOT p99 ms | TTFT p50 ms | completed / submitted | SLO attainment |")
    print("|---|---:|---:|---:|---:|")
    for kind in FILES:
        s = summary(kind, {})
        print(f"| {kind} (4 x 8 H100) | {s['p99_tpot_ms']:.2f} | {s['median_ttft_ms']:.1f} | "
              f"{s['completed']} / {s['submitted']} | {100 * s['slo_attainment']:.1f} % |")


if __name__ == "__main__":
    main()

"""The docs/prefix_caching.md tables: routers with prefix caching off and on, one run each on the
virtual engine (caching off: ``prefix_cache.enabled`` and ``decode_keep`` false, ``transfer`` full).

    python benchmarks/prefix_table.py experiments/mooncake_conv.toml --set workload.speedup=0.5 \
        --policies round_robin,least_loaded,prefix_aware,prefix_aware:weight=4
    python benchmarks/prefix_table.py experiments/multi_turn_chat.toml --fabric \
        --policies round_robin,least_loaded,kv_aware,prefix_aware
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from disagg.cluster.config import load_experiment
from disagg.cluster.overrides import parse_sets
from disagg.experiments.compare.runs import parse_policies, variant
from disagg.experiments.run import run_experiment

OFF = {"prefix_cache.enabled": False, "prefix_cache.decode_keep": False,
       "prefix_cache.transfer": "full"}


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def main() -> None:
    """Run every (router, caching) point and print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", type=Path)
    ap.add_argument("--policies", required=True, help="comma-separated routers (name:key=value)")
    ap.add_argument("--off", default="round_robin,least_loaded",
                    help="routers also run with caching off")
    ap.add_argument("--fabric", action="store_true",
                    help="the closed-loop table: requests, goodput, decode-kept hits, fabric GB")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key of every run (as `disagg run --set`)")
    args = ap.parse_args()
    row = _fabric_row if args.fabric else _latency_row
    print(FABRIC_HEAD if args.fabric else LATENCY_HEAD)
    print("|---" * (FABRIC_HEAD if args.fabric else LATENCY_HEAD).count(" | ") + "|---|")
    points = [(p, False) for p in parse_policies(args.off)] + \
        [(p, True) for p in parse_policies(args.policies)]
    for policy, on in points:
        base = load_experiment(args.experiment, {**parse_sets(args.set),
                                                 "experiment.engine": "virtual",
                                                 **({} if on else OFF)})
        exp = variant(base, policy, 0.0, base.experiment.seed, "virtual")
        s = run_experiment(exp).summary
        print(f"| `{policy.label}` | {'on' if on else 'off'} | {row(s)} |", flush=True)


LATENCY_HEAD = ("| router | caching | prefix hit % (blocks) | cached tokens % | TTFT p50 ms | "
                "TTFT p99 ms | TTFT mean ms | SLO attainment % | prefill util % |")
FABRIC_HEAD = ("| router | caching | requests | TTFT p50 ms | TTFT p99 ms | attainment % | "
               "goodput req/s | prefill hit % | decode kept hit % | fabric GB sent | "
               "GB not re-sent |")


def _latency_row(s: dict[str, Any]) -> str:
    return (f"{_pct(s.get('prefix_hit_rate'))} | {_pct(s.get('cached_token_share'))} | "
            f"{s['median_ttft_ms']:,.1f} | {s['p99_ttft_ms']:,.1f} | {s['mean_ttft_ms']:,.0f} | "
            f"{100 * s['slo_attainment']:.1f} | {_pct(s['prefill_utilization'])}")


def _fabric_row(s: dict[str, Any]) -> str:
    kept = s.get("decode_kv_reused_bytes")
    return (f"{s['submitted']} | {s['median_ttft_ms']:,.0f} | {s['p99_ttft_ms']:,.0f} | "
            f"{100 * s['slo_attainment']:.1f} | {s['request_goodput']:.2f} | "
            f"{_pct(s.get('prefix_hit_rate'))} | {_pct(s.get('decode_kv_hit_rate'))} | "
            f"{s['fabric_bytes'] / 1e9:,.1f} | {'–' if kept is None else f'{kept / 1e9:,.1f}'}")


if __name__ == "__main__":
    main()

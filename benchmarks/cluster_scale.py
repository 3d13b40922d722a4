"""The largest cluster that runs here as 3 emulated nodes, and the memory per unit actor.

Starts a 3-node ``ray.cluster_utils.Cluster`` on this machine (head: control plane; node 1:
Trainium2; node 2: CS-3), then runs experiments of growing size at dilation 1 and reports units,
wall time, lag p99 and late decisions; then the resident memory of the unit actors.

    python benchmarks/cluster_scale.py [--sizes 4:2,8:2,16:4,32:8] [--dilations 1,4] [--duration 10]
    python benchmarks/cluster_scale.py --sizes ""     # memory per unit only (1, 4, 16 per actor)
    python benchmarks/cluster_scale.py --markdown     # that table as markdown, nothing else

Measured numbers are in docs/cluster.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_experiment  # noqa: E402  (the tests' experiment factory)

from disagg.experiments.run import run_experiment  # noqa: E402


def start_cluster() -> Cluster:
    mib = 2**20
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"disagg_control": 64}, "object_store_memory": 300 * mib})
    cluster.add_node(num_cpus=0, resources={"trainium2": 4096}, object_store_memory=300 * mib)
    cluster.add_node(num_cpus=0, resources={"cs3": 4096}, object_store_memory=300 * mib)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR")
    return cluster


def unit_memory(n: int = 6, per_actor: int = 1) -> float:
    """Mean resident memory (MB) per unit of ``n`` idle prefill units, ``per_actor`` hosted by
    each actor (``[placement] units_per_actor``): actor RSS / units it hosts."""
    from disagg.actors.engines.ray_engine import ComponentHost

    exp = make_experiment(experiment__engine="ray", prefill__units=n)
    host = ray.remote(ComponentHost)
    names = [f"prefill-{i}" for i in range(n)]
    groups = [tuple(names[i:i + per_actor]) for i in range(0, n, per_actor)]
    actors = [host.options(num_cpus=0, resources={"trainium2": 4 * len(g)}).remote(exp, g)
              for g in groups]
    rss = ray.get([a.memory_rss_bytes.remote() for a in actors])
    for a in actors:
        ray.kill(a)
    return sum(rss) / n / 2**20


def print_memory_markdown(units: int = 16) -> None:
    """The memory-per-unit table: ``units`` idle prefill units at 1, 4 and 16 units per actor."""
    print(f"| units per actor | actors for {units} units | resident memory per unit (MB) |")
    print("|---:|---:|---:|")
    for per_actor in (1, 4, 16):
        print(f"| {per_actor} | {-(-units // per_actor)} | {unit_memory(units, per_actor):.1f} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4:2,8:2,16:4,32:8", help="prefill:decode units")
    ap.add_argument("--dilations", default="1,4", help="wall seconds per emu second")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate-per-prefill", type=float, default=4.0)
    ap.add_argument("--markdown", action="store_true",
                    help="print the memory-per-unit table as markdown (and nothing else)")
    ap.add_argument("--markdown-scale", action="store_true",
                    help="print the runs as a markdown table (docs/cluster.md), no memory")
    args = ap.parse_args()
    t = time.time()
    cluster = start_cluster()
    md = args.markdown_scale
    print(f"3-node cluster up in {time.time() - t:.1f} s" + ("\n" if md else ""))
    try:
        if args.markdown:
            print_memory_markdown()
            return
        if md:
            print("| prefill units | decode units | actors | dilation | requests | wall s | "
                  "lag p50 ms | lag p99 ms | late decisions | completed | TTFT vs virtual |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        else:
                print(f"{'prefill':>7s} {'decode':>6s} {'actors':>6s} {'dilation':>8s} {'req':>5s} "
                  f"{'wall s':>7s} {'lag p50 ms':>10s} {'lag p99 ms':>10s} {'late':>5s} "
                  f"{'completed':>9s} {'TTFT vs virtual':>15s}")
        for size in filter(None, args.sizes.split(",")):  # --sizes "": memory only
            p, d = (int(x) for x in size.split(":"))
            for dilation in (float(x) for x in args.dilations.split(",")):
                exp = make_experiment(
                    experiment__engine="ray", experiment__duration_s=args.duration,
                    experiment__dilation=dilation, prefill__units=p, decode__units=d,
                    workload__rate_per_s=args.rate_per_prefill * p)
                t = time.time()
                s = run_experiment(exp).summary
                wall = time.time() - t
                ref = run_experiment(exp.model_copy(update={"experiment": exp.experiment.model_copy(
                    update={"engine": "virtual"})})).summary
                drift = s["mean_ttft_ms"] / ref["mean_ttft_ms"] - 1
                if md:
                    print(f"| {p} | {d} | {p + d + 4} | {dilation:g} | {s['submitted']:,} | "
                          f"{wall:.1f} | {s['lag_p50_ms']:,.1f} | {s['lag_p99_ms']:,.1f} | "
                          f"{s['late_decisions']:,} | {s['completed']:,} | {100 * drift:+.1f} % |",
                          flush=True)
                    continue
                print(f"{p:7d} {d:6d} {p + d + 4:6d} {dilation:8g} {s['submitted']:5d} {wall:7.1f} "
                      f"{s['lag_p50_ms']:10.2f} {s['lag_p99_ms']:10.2f} {s['late_decisions']:5d} "
                      f"{s['completed']:9d} {100 * drift:+14.1f}%", flush=True)
        for per_actor in (1, 4, 16) if not md else ():
            print(f"memory per unit, {per_actor} per actor: "
                  f"{unit_memory(16, per_actor):.1f} MB resident")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()

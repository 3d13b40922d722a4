"""How faithful the ray engine is to the virtual engine, and the largest faithful cluster.

Each point runs one experiment twice with the same config and seed — on the virtual engine (the
reference) and on the ray engine — and reports, as % error of the ray run against the virtual
one: mean and p99 TTFT, mean TPOT and output throughput (tokens per emu s); then late decisions as
% of decisions (every component's ``decide_at``), lag p50/p99 (emu ms), where the late decisions
happened and the lag corrections made (the time gate's counts: decode ``late_joins``, prefill
``reformed_batches``, the fabric's ``backdated`` transfers), by component kind, the ray run's wall seconds, and the actors' CPU seconds
over the run as % of this machine's cores with the three busiest actors
(``ComponentHost.results``' ``cpu_s``). A point is **faithful** when the four metrics are within
2 % and late decisions under 0.1 % of decisions.

Tables (``--only``):

* ``fidelity``: the quickstart (2 + 1 units, 4 req/s) and 16 + 4 units at 80 % prefill load
  (``virtual_speed.prefill_rate_for_load``), at dilations 4, 2, 1, 0.5 (``--dilations``);
* ``largest``: growing clusters at 80 % load (``--sizes``, 4 + 1, 8 + 2, 16 + 4, ...) at each of
  ``--largest-dilations`` on this machine's embedded Ray, until the four metrics leave their
  bounds; then the largest faithful size and the largest with the four metrics in bounds
  ("metrics only" in the last column: within 2 % but too many late decisions);
* ``cluster``: the same on a 3-node ``ray.cluster_utils.Cluster`` on this machine
  (``cluster_scale.start_cluster``: head with the control plane, a Trainium2 node, a CS-3 node).

    python benchmarks/ray_fidelity.py [--only fidelity,largest,cluster] [--duration 20]
        [--dilations 4,2,1,0.5] [--sizes 4:1,8:2,16:4,32:8,64:16] [--largest-dilations 1,4]
        [--set KEY=VALUE ...] [--markdown] [--quick]

``--set placement.units_per_actor=8`` (repeatable) overrides any config field (dotted path, TOML
value) on every run; ``--quick``: 10 emu s, dilations 4 and 1, sizes up to 16 + 4.
Measured numbers are in docs/performance.md ("Ray engine fidelity").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_scale import start_cluster  # noqa: E402
from virtual_speed import QUICKSTART, prefill_rate_for_load  # noqa: E402

from disagg.cluster.config import Experiment, load_experiment  # noqa: E402
from disagg.cluster.errors import ConfigError  # noqa: E402
from disagg.cluster.overrides import parse_sets  # noqa: E402
from disagg.experiments.run import run_experiment  # noqa: E402

MAX_ERROR_PCT = 2.0  # faithful: each metric within this % of the virtual engine's
MAX_LATE_PCT = 0.1  # faithful: late decisions under this % of decisions
METRICS = (("mean TTFT", "mean_ttft_ms"), ("p99 TTFT", "p99_ttft_ms"),
           ("mean TPOT", "mean_tpot_ms"), ("throughput", "output_throughput"))


@dataclass(frozen=True)
class Scenario:
    """One cluster: prefill and decode units and the arrival rate (req per emu s)."""

    label: str
    prefill: int
    decode: int
    rate_per_s: float


@dataclass(frozen=True)
class Point:
    """One ray run against its virtual reference: errors in %, late decisions in % of decisions,
    lag in emu ms, the ray run's wall seconds, late decisions by component kind."""

    scenario: Scenario
    dilation: float
    errors_pct: dict[str, float]
    late_pct: float
    decisions: int
    lag_p50_ms: float
    lag_p99_ms: float
    wall_s: float
    late_by_kind: dict[str, int]
    corrections: dict[str, int]
    completed: str
    cpu_pct: float
    busiest: str

    @property
    def metrics_ok(self) -> bool:
        """The four metrics within :data:`MAX_ERROR_PCT` of the virtual engine's."""
        return all(abs(e) <= MAX_ERROR_PCT for e in self.errors_pct.values())

    @property
    def faithful(self) -> bool:
        """Metrics within bounds and late decisions under :data:`MAX_LATE_PCT` of decisions."""
        return self.metrics_ok and self.late_pct < MAX_LATE_PCT


def experiment(s: Scenario, engine: str, dilation: float, duration_s: float,
               sets: dict[str, Any]) -> Experiment:
    """The quickstart with the scenario's units and rate, on ``engine``; ``sets`` on top."""
    return load_experiment(QUICKSTART, {
        "experiment.engine": engine, "experiment.dilation": dilation,
        "experiment.duration_s": duration_s, "prefill.units": s.prefill,
        "decode.units": s.decode, "workload.rate_per_s": s.rate_per_s, **sets})


def by_kind(raw: dict[str, Any], *keys: str) -> dict[str, int]:
    """The sum of the components' ``keys`` per component kind (unit kind, else the control
    component's name), kinds with none left out."""
    out: dict[str, int] = {}
    for c in raw["components"]:
        kind = c["unit"]["kind"] if c.get("unit") else c["name"]
        out[kind] = out.get(kind, 0) + sum(int(c.get(key, 0)) for key in keys)
    return {k: v for k, v in out.items() if v}


def cpu_use(raw: dict[str, Any], dilation: float) -> tuple[float, str]:
    """The actors' CPU seconds from the run's start to its end as % of this machine's cores over
    that wall time (a cluster of emulated nodes shares them too), and the three busiest actors
    with their CPU seconds."""
    cpu = {c["name"]: float(c.get("cpu_s", 0.0)) for c in raw["components"]}
    top = sorted(cpu.items(), key=lambda kv: -kv[1])[:3]
    pct = 100.0 * sum(cpu.values()) / (raw["end_s"] * dilation * (os.cpu_count() or 1))
    return pct, ", ".join(f"{n} {v:.1f}" for n, v in top)


def measure(s: Scenario, dilation: float, duration_s: float, sets: dict[str, Any],
            reference: dict[str, Any], address: str | None = None) -> Point:
    """Run ``s`` on the ray engine at ``dilation`` and compare with ``reference`` (the virtual
    run's summary)."""
    t = time.perf_counter()
    result = run_experiment(experiment(s, "ray", dilation, duration_s, sets), address=address)
    wall_s = time.perf_counter() - t
    got = result.summary
    errors = {label: 100.0 * (got[key] / reference[key] - 1.0) if reference[key] else 0.0
              for label, key in METRICS}
    decisions = int(got["decisions"])
    return Point(s, dilation, errors, 100.0 * got["late_decisions"] / max(decisions, 1),
                 decisions, got["lag_p50_ms"], got["lag_p99_ms"], wall_s,
                 by_kind(result.raw, "late_decisions"),
                 by_kind(result.raw, "late_joins", "reformed_batches", "backdated"),
                 f"{got['completed']}/{got['submitted']}", *cpu_use(result.raw, dilation))


def virtual_reference(s: Scenario, duration_s: float, sets: dict[str, Any]) -> dict[str, Any]:
    """The virtual engine's summary for ``s`` (the same config and seed as the ray runs)."""
    return run_experiment(experiment(s, "virtual", 1.0, duration_s, sets)).summary


HEADER = ("| cluster | dilation | mean TTFT | p99 TTFT | mean TPOT | throughput | late decisions "
          "| lag p50 ms | lag p99 ms | late by kind | corrections | completed | wall s "
          "| actor CPU | busiest actors (CPU s) | faithful |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|")


def row(p: Point, markdown: bool) -> str:
    """One table row (markdown), or the same fields space-separated."""
    err = [f"{p.errors_pct[label]:+.2f} %" for label, _ in METRICS]
    kinds, fixes = (", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"
                    for d in (p.late_by_kind, p.corrections))
    cells = [p.scenario.label, f"{p.dilation:g}", *err,
             f"{p.late_pct:.2f} % of {p.decisions:,}", f"{p.lag_p50_ms:,.1f}",
             f"{p.lag_p99_ms:,.1f}", kinds, fixes, p.completed,
             f"{p.wall_s:.1f}", f"{p.cpu_pct:.0f} %", p.busiest,
             "yes" if p.faithful else "metrics only" if p.metrics_ok else "no"]
    return "| " + " | ".join(cells) + " |" if markdown else "  ".join(cells)


def fidelity(args: argparse.Namespace, per_prefill: float, sets: dict[str, Any]) -> None:
    """The fidelity table: two scenarios at every dilation."""
    scenarios = [Scenario("quickstart 2 + 1", 2, 1, 4.0),
                 Scenario("16 + 4 at 80 %", 16, 4, 16 * per_prefill)]
    title("fidelity (ray engine against the virtual engine, same config and seed)", args)
    for s in scenarios:
        ref = virtual_reference(s, args.duration, sets)
        for dilation in floats(args.dilations):
            print(row(measure(s, dilation, args.duration, sets, ref), args.markdown), flush=True)


def largest(args: argparse.Namespace, per_prefill: float, sets: dict[str, Any],
            address: str | None, where: str) -> None:
    """Growing clusters at 80 % load at each dilation, until the four metrics leave their
    bounds; then the largest faithful size and the largest with the metrics in bounds."""
    for dilation in floats(args.largest_dilations):
        title(f"largest faithful cluster ({where}, 80 % prefill load, dilation {dilation:g})",
              args)
        faithful, metrics_ok = "none", "none"
        for size in args.sizes.split(","):
            p, d = (int(x) for x in size.split(":"))
            s = Scenario(f"{p} + {d}", p, d, p * per_prefill)
            point = measure(s, dilation, args.duration, sets,
                            virtual_reference(s, args.duration, sets), address)
            print(row(point, args.markdown), flush=True)
            if not point.metrics_ok:
                break
            metrics_ok = s.label
            faithful = s.label if point.faithful and faithful == previous(s, args) else faithful
        print(f"\ndilation {dilation:g}: largest faithful {faithful}; largest with the four "
              f"metrics within {MAX_ERROR_PCT:g} %: {metrics_ok}\n", flush=True)


def on_cluster(args: argparse.Namespace, per_prefill: float, sets: dict[str, Any]) -> None:
    """:func:`largest` on a 3-node ``ray.cluster_utils.Cluster`` started here."""
    cluster = start_cluster()
    try:
        largest(args, per_prefill, sets, cluster.address, "3-node Ray cluster on this machine")
    finally:
        ray.shutdown()
        cluster.shutdown()


def previous(s: Scenario, args: argparse.Namespace) -> str:
    """The label of the size before ``s`` in ``--sizes`` ("none" for the first): a size counts
    as faithful only if every smaller one was."""
    labels = [" + ".join(x.split(":")) for x in args.sizes.split(",")]
    i = labels.index(s.label)
    return labels[i - 1] if i else "none"


def title(text: str, args: argparse.Namespace) -> None:
    print(f"\n{text}\n" + (HEADER if args.markdown else HEADER.splitlines()[0]), flush=True)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="fidelity,largest,cluster", help="which tables")
    ap.add_argument("--duration", type=float, default=20.0, help="emu seconds of arrivals")
    ap.add_argument("--dilations", default="4,2,1,0.5", help="fidelity table's dilations")
    ap.add_argument("--sizes", default="4:1,8:2,16:4,32:8,64:16", help="prefill:decode units")
    ap.add_argument("--largest-dilations", default="1,4", help="largest-cluster dilations")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override on every run (dotted path, TOML value); repeatable")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("--quick", action="store_true",
                    help="10 emu s, dilations 4 and 1, sizes up to 16 + 4")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.dilations, args.sizes = 10.0, "4,1", "4:1,8:2,16:4"
    try:
        sets = parse_sets(args.set)
        experiment(Scenario("check", 1, 1, 1.0), "ray", 1.0, 1.0, sets)
    except ConfigError as e:
        ap.exit(2, f"ray_fidelity: {e}\n")
    per_prefill = prefill_rate_for_load(0.8, 1)
    print(f"80 % prefill load = {per_prefill:.3f} req/s per prefill unit; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    only = set(args.only.split(","))
    if "fidelity" in only:
        fidelity(args, per_prefill, sets)
    if "largest" in only:
        largest(args, per_prefill, sets, None, "embedded Ray on this machine")
    if "cluster" in only:
        on_cluster(args, per_prefill, sets)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

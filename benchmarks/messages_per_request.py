"""Component messages and actor calls per request, by message type, on either engine.

``--engine virtual`` (default) counts every message a component delivers to another (each
``Peer.send``) on the virtual engine; load reports are rate-limited in emu time, so for the same
seed these are the messages the ray engine's components send too. ``--engine ray`` runs the
experiment on an embedded Ray and reports what really crossed actors, as counted by the ray
engine's transport (``actors/engines/transport.py``; the run's ``summary.json`` ``messages``):
messages sent, and the actor calls that carried them (one call carries every message one actor
sends to one other actor in one event-loop tick), and the CPU per request of the actor processes
against the virtual engine's run of the same experiment. ``--markdown`` prints the table by type.
``--prefill``/``--decode``/``--load`` size the quickstart (16 + 4 at 0.8 is the scenario of
``benchmarks/virtual_speed.py``: arrivals keeping the prefill units busy that fraction of time).

    python benchmarks/messages_per_request.py [EXPERIMENT] [--duration 1000] [--engine ray]
        [--prefill 16 --decode 4 --load 0.8] [--markdown] [--no-one-control-actor]
        [--units-per-actor N]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from virtual_speed import prefill_rate_for_load

from disagg.actors.engines.ray_engine import run_ray
from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.component import Component
from disagg.cluster.config import Experiment, load_experiment
from disagg.experiments.run import assemble, execute

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def count_virtual(exp: Experiment) -> tuple[Counter[str], int]:
    """(message type -> messages delivered or load reports posted, requests submitted) on the
    virtual engine."""
    counts: Counter[str] = Counter()

    def counting(component: Component) -> Any:
        deliver = component.deliver

        def wrapped(message: Any) -> None:
            counts[type(message).__name__] += 1
            deliver(message)
        return wrapped

    def posting(router: Any) -> Any:
        post = router.post_report

        def wrapped(message: Any) -> bool:
            taken = post(message)
            counts[type(message).__name__] += taken  # a report taken as it arrived, no delivery
            return taken
        return wrapped

    def on_start(comps: dict[str, Component]) -> None:
        for comp in comps.values():
            comp.deliver = counting(comp)  # type: ignore[method-assign]
            if hasattr(comp, "post_report"):  # the router (actors/components/router_reports.py)
                comp.post_report = posting(comp)

    raw = run_virtual(exp, on_start=on_start)
    collector = next(c for c in raw["components"] if c["name"] == "collector")
    return counts, int(collector["submitted"])


def load_sized(path: Path, args: argparse.Namespace) -> Experiment:
    """The experiment on ``args.engine`` for ``args.duration``, sized by the size options."""
    overrides: dict[str, Any] = {"experiment.engine": args.engine,
                                 "experiment.duration_s": args.duration}
    if args.prefill:
        overrides["prefill.units"] = args.prefill
        rate = prefill_rate_for_load(args.load, args.prefill)
        overrides["workload.rate_per_s"] = rate
    if args.decode:
        overrides["decode.units"] = args.decode
    if args.one_control_actor is not None:
        overrides["placement.one_control_actor"] = args.one_control_actor
    overrides["placement.units_per_actor"] = args.units_per_actor
    return load_experiment(path, overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", type=Path, default=QUICKSTART)
    ap.add_argument("--duration", type=float, default=1000.0, help="emu seconds of arrivals")
    ap.add_argument("--engine", choices=("virtual", "ray"), default="virtual")
    ap.add_argument("--prefill", type=int, default=0, help="prefill units (0: the file's)")
    ap.add_argument("--decode", type=int, default=0, help="decode units (0: the file's)")
    ap.add_argument("--load", type=float, default=0.8, help="prefill load with --prefill")
    ap.add_argument("--markdown", action="store_true", help="a markdown table by type")
    ap.add_argument("--one-control-actor", action=argparse.BooleanOptionalAction, default=None,
                    help="[placement] one_control_actor (default: the experiment's; true unless "
                    "set): the control plane in one actor, or one actor per control component")
    ap.add_argument("--units-per-actor", type=int, default=1, help="[placement] units_per_actor")
    args = ap.parse_args()
    exp = load_sized(args.experiment, args)
    if args.engine == "virtual":
        sent, requests = count_virtual(exp)
        calls: Counter[str] = Counter(sent)  # one call per message, had each its own
        total_calls = sum(sent.values())
    else:
        raw = run_ray(exp)
        m = raw["messages"]
        ray_s = assemble(exp, raw).summary
        cpu0 = time.process_time()
        virtual_raw = execute(exp.model_copy(update={"experiment": exp.experiment.model_copy(
            update={"engine": "virtual"})}))
        virtual_cpu_s = time.process_time() - cpu0
        ref = assemble(exp, virtual_raw).summary
        print(f"lag p99 {ray_s['lag_p99_ms']:.1f} ms, late decisions {ray_s['late_decisions']}, "
              f"mean TTFT {ray_s['mean_ttft_ms']:.1f} ms (virtual {ref['mean_ttft_ms']:.1f} ms)")
        actors_cpu_s = sum(float(c.get("cpu_s", 0.0)) for c in raw["components"])
        print(f"CPU per request: ray engine {1e6 * actors_cpu_s / m['requests']:,.0f} us (every "
              f"actor process, idle waits included), virtual engine "
              f"{1e6 * virtual_cpu_s / ref['submitted']:,.0f} us (its run, one process)")
        sent = Counter({k: v["sent"] for k, v in m["by_type"].items()})
        calls = Counter({k: v["calls_with"] for k, v in m["by_type"].items()})
        requests, total_calls = m["requests"], m["actor_calls"]
    total = sum(sent.values())
    print(f"{args.engine}: {requests:,} requests, {total:,} messages ({total / requests:.2f} per "
          f"request), {total_calls:,} actor calls ({total_calls / requests:.2f} per request)")
    if args.markdown:
        print("\n| message | sent | per request | actor calls carrying it | per request |")
        print("|---|---:|---:|---:|---:|")
        for name, n in sent.most_common():
            print(f"| `{name}` | {n:,} | {n / requests:.2f} | {calls[name]:,} | "
                  f"{calls[name] / requests:.2f} |")


if __name__ == "__main__":
    main()

"""Component messages per request, by message type, on the quickstart (or any experiment).

Counts every message a component delivers to another (each ``Peer.send``) while the experiment
runs on the virtual engine. On the ray engine each of these is one actor call
(``RayPeer.send`` -> ``handle.deliver.remote``), so the counts are the ray engine's messages on
the request path, less what only the ray engine sends (live-view state reports every ``live_s``
wall seconds, start-up and results calls). Load reports are rate-limited in emu time, so their
count is the same on both engines for the same seed.

    python benchmarks/messages_per_request.py [experiments/quickstart.toml] [--duration 1000]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.component import Component
from disagg.cluster.config import load_experiment

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def count_messages(experiment: Path, duration_s: float) -> tuple[Counter[tuple[str, str]], int]:
    """((message type, receiver kind) -> messages delivered, requests submitted)."""
    exp = load_experiment(experiment, {"experiment.engine": "virtual",
                                       "experiment.duration_s": duration_s})
    counts: Counter[tuple[str, str]] = Counter()

    def counting(component: Component) -> Any:
        deliver = component.deliver
        kind = component.name.split("-")[0]

        def wrapped(message: Any) -> None:
            counts[(type(message).__name__, kind)] += 1
            deliver(message)
        return wrapped

    def on_start(comps: dict[str, Component]) -> None:
        for comp in comps.values():
            comp.deliver = counting(comp)  # type: ignore[method-assign]

    raw = run_virtual(exp, on_start=on_start)
    collector = next(c for c in raw["components"] if c["name"] == "collector")
    return counts, int(collector["submitted"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", type=Path, default=QUICKSTART)
    ap.add_argument("--duration", type=float, default=1000.0, help="emu seconds of arrivals")
    args = ap.parse_args()
    counts, requests = count_messages(args.experiment, args.duration)
    total = sum(counts.values())
    print(f"{requests:,} requests, {total:,} messages, {total / requests:.2f} per request\n")
    print("| message | to | messages | per request |\n|---|---|---:|---:|")
    for (name, kind), n in counts.most_common():
        print(f"| `{name}` | {kind} | {n:,} | {n / requests:.2f} |")


if __name__ == "__main__":
    main()

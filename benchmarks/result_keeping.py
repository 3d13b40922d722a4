"""What a whole Mooncake run's result-keeping costs, and what moving it off its thread could save.

An ablation, not a run with correct results.

    python benchmarks/result_keeping.py --rounds 5

Four result sinks (:data:`SINKS`) take every request's, decode run's, transfer's and state
change's figures as the run goes: the collector folds each ended request's records into its
rows, the decode units' inter-token latency sketch takes each run of step durations, the
fabric's link history takes the link loads after each transfer start and end, and the units'
logs take each busy span and state change. Each round runs the whole trace (``disagg run`` of
``benchmarks/run_phases.py``'s experiment, through the command line's ``main`` in a fresh child,
start-up included) in pairs: as it is, then with all four sinks replaced by no-ops
(:data:`NONE`: the collector keeps a stub row per request so that the run still ends; what the
sinks cost is an upper bound of what any change to them can save); as it is again, then with all
four *shipped* (:data:`SHIPPED`): each call's arguments appended to a buffer that is pickled
every :data:`BATCH` calls and dropped — the decode runs' step durations as bytes, a link loads
mapping once per mapping the network hands out (then its id), the logs' arguments, each ended
request's records as tuples of their row fields. That is what the run's thread would pay to hand
the sinks to a second process; the process itself, and the work it would do there, is not part
of it. Figures: each child's wall (around it) and CPU (its rusage), medians of the rounds, and
each way's wall over its pair's plain wall, median and range. One sink alone as a no-op runs
by hand: ``--child none:itl --out DIR`` (:data:`ALONE`).
Prints a Markdown table (docs/performance.md, block ``result-keeping``:
``python benchmarks/regen_docs.py --only result-keeping``).
"""

from __future__ import annotations

import argparse
import json
import operator
import pickle
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from run_phases import WHOLE, json_child, print_rounds, rounds_parser, run_argv

# the command line's module first, as a run loads it: it sets OpenBLAS to one thread (and imports
# numpy) before anything else loads numpy
from disagg.experiments.cli.main import main as disagg_main

# isort: split
from disagg.actors.components.collector import Collector
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.records import record_fields
from disagg.cluster.sketch import QuantileSketch
from disagg.experiments.cli.gc_rules import exit_now
from disagg.fabric.link_history import LinkHistory

SINKS = {
    "collector": "the collector's rows (`Collector._finish`: an ended request's records folded "
                 "into its `requests` and `transfers` rows)",
    "itl": "the inter-token latency sketch (`QuantileSketch.add_run`: a decode run's step "
           "durations)",
    "links": "the fabric's link history (`LinkHistory.record`: the link loads after each "
             "transfer start and end)",
    "logs": "the units' logs (`UnitLog.work`, `UnitLog.state`: busy spans, tokens, state "
            "changes)",
}
PLAIN, NONE, SHIPPED = "plain", "none", "shipped"
WAYS = (f"{NONE}:all", f"{SHIPPED}:all")  # each paired with a plain run
ALONE = tuple(f"{NONE}:{s}" for s in SINKS)  # one sink as a no-op (--child only: by hand)
BATCH = 2048  # shipped calls pickled at once


class Sinks:
    """The sinks' calls replaced while :meth:`replaced` is open: counted per sink, and either
    dropped (:data:`NONE`) or shipped (:data:`SHIPPED`: pickled in batches, bytes counted)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.shipped_bytes = 0
        self._buffer: list[tuple[Any, ...]] = []
        self._mappings: set[int] = set()
        self._rows: dict[type, Callable[[Any], Any]] = {}

    def ship(self, item: tuple[Any, ...]) -> None:
        self._buffer.append(item)
        if len(self._buffer) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.shipped_bytes += len(pickle.dumps(self._buffer, protocol=5))
            self._buffer.clear()

    def _row(self, record: Any) -> Any:
        """A record as the tuple of its row fields (one C call, its getter made once a type)."""
        get = self._rows.get(type(record))
        if get is None:
            get = self._rows[type(record)] = operator.attrgetter(*record_fields(type(record)))
        return get(record)

    @contextmanager
    def replaced(self, sinks: tuple[str, ...], how: str) -> Iterator[Sinks]:
        """Replace ``sinks`` (names of :data:`SINKS`) ``how`` (:data:`NONE` or
        :data:`SHIPPED`) until the block ends; the classes are restored after it."""
        shipped, calls = how == SHIPPED, self.calls
        saved: list[tuple[type, str, Any]] = []

        def put(cls: type, name: str, value: Any) -> None:
            saved.append((cls, name, cls.__dict__[name]))
            setattr(cls, name, value)

        if "collector" in sinks:
            def finish(coll: Any, records: Any, end: Any) -> None:
                calls["collector"] += 1
                if shipped:
                    self.ship((0, [self._row(r) for r in records], self._row(end)))
                coll._order[end.request_id] = ({"request_id": end.request_id}, [])
                coll._release(final=False)
            put(Collector, "_finish", finish)
        if "itl" in sinks:
            def add_run(sketch: Any, values: Any, first_weight: float, weight: float) -> None:
                calls["itl"] += 1
                if shipped:
                    self.ship((1, values.tobytes(), first_weight, weight))
            put(QuantileSketch, "add_run", add_run)
        if "links" in sinks:
            def record(history: Any, t: float, loads: Any) -> None:
                calls["links"] += 1
                if shipped:
                    key = id(loads)  # the network hands out one mapping per mix of routes
                    if key in self._mappings:
                        self.ship((2, t, key))
                    else:
                        self._mappings.add(key)
                        self.ship((2, t, key, dict(loads)))
            put(LinkHistory, "record", record)
        if "logs" in sinks:
            def work(log: Any, *args: Any) -> None:
                calls["logs"] += 1
                if shipped:
                    self.ship((3, id(log), args))
            init = UnitLog.__init__

            def made(log: Any, *args: Any, **kwargs: Any) -> None:
                init(log, *args, **kwargs)
                me = id(log)

                def state(*args: Any) -> None:  # (an instance attribute: set per log)
                    calls["logs"] += 1
                    if shipped:
                        self.ship((4, me, args))
                log.state = state
            put(UnitLog, "work", work)
            put(UnitLog, "__init__", made)
        try:
            yield self
        finally:
            self.flush()
            for cls, name, value in reversed(saved):
                setattr(cls, name, value)


def child(way: str, out: str) -> dict[str, Any]:
    """The whole run through the command line's ``main`` in this process, ``way`` "plain", one of
    :data:`WAYS` or of :data:`ALONE`: the requests it submitted and the sinks' calls it made."""
    sinks = Sinks()
    how, _, which = way.partition(":")
    names = tuple(SINKS) if which == "all" else (which,) if which else ()
    with sinks.replaced(names, how):
        code = disagg_main(run_argv(WHOLE, out))
    summary = json.loads((Path(out) / "summary.json").read_text())
    return {"code": code, "requests": summary["submitted"],
            "calls": dict(sinks.calls), "shipped_bytes": sinks.shipped_bytes}


def measure(rounds: int) -> list[dict[str, tuple[dict[str, Any], dict[str, Any]]]]:
    """``rounds`` rounds, each a pair of fresh children for every way of :data:`WAYS`: the run
    as it is, then that way (the machine's speed drifts less within a pair than a round)."""
    got = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            pairs = {way: (_child_run(PLAIN, Path(tmp) / "out"), _child_run(way, Path(tmp) / "out"))
                     for way in WAYS}
            print(f"round {i + 1}: " + ", ".join(f"{PLAIN} {a['wall_s']:.2f} s, {w} "
                                                 f"{b['wall_s']:.2f} s"
                                                 for w, (a, b) in pairs.items()), file=sys.stderr)
            got.append(pairs)
    return got


def _child_run(way: str, out: Path) -> dict[str, Any]:
    """A fresh child's :func:`child` (``--child way``) with its wall and CPU s."""
    start = time.perf_counter()
    cpu, result = json_child([sys.executable, __file__, "--child", way, "--out", str(out)])
    wall_s = time.perf_counter() - start
    if result["code"] != 0:
        raise RuntimeError(f"{way}: disagg run exited {result['code']}")
    return result | {"wall_s": wall_s, "cpu_s": cpu}


def table(got: list[dict[str, tuple[dict[str, Any], dict[str, Any]]]], rounds: int) -> str:
    """The Markdown table: the plain run's and each way's wall and CPU (medians), each way's
    wall over its pair's plain wall (median and range), and the sinks' calls a request."""
    plains = [a for pairs in got for a, _ in pairs.values()]
    n = plains[0]["requests"]
    rows = ["| the run, with | wall s | CPU s | wall / the paired plain run's |",
            "|---|---:|---:|---:|",
            f"| nothing replaced | {statistics.median(a['wall_s'] for a in plains):.2f} | "
            f"{statistics.median(a['cpu_s'] for a in plains):.2f} | 1 |"]
    for way in WAYS:
        runs = [pairs[way][1] for pairs in got]
        ratios = sorted(b["wall_s"] / a["wall_s"] for a, b in (pairs[way] for pairs in got))
        what = ("the four sinks as no-ops" if way.startswith(NONE) else
                f"the four sinks shipped ({runs[0]['shipped_bytes'] / n / 1e3:.1f} kB pickled a "
                f"request, in batches of {BATCH:,} calls)")
        rows.append(f"| {what} | {statistics.median(b['wall_s'] for b in runs):.2f} | "
                    f"{statistics.median(b['cpu_s'] for b in runs):.2f} | "
                    f"**{statistics.median(ratios):.3f}** ({ratios[0]:.3f}–{ratios[-1]:.3f}) |")
    calls = got[0][WAYS[0]][1]["calls"]
    each = "; ".join(f"{SINKS[s]}: {calls.get(s, 0) / n:.1f}" for s in SINKS)
    return (f"`python benchmarks/result_keeping.py --rounds {rounds}` (the whole Mooncake trace, "
            f"{n:,} requests, `disagg run` as the `vs-peers` block runs it, start-up included; "
            f"{rounds} rounds of fresh processes, each way paired with a plain run just before "
            f"it; medians). The sinks' calls a request — {each}.\n\n" + "\n".join(rows))


def main() -> None:
    parser = rounds_parser(__doc__, 5)
    parser.add_argument("--child", choices=(PLAIN, *WAYS, *ALONE), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out)))
        exit_now(0)  # as the console script ends (no interpreter teardown)
        return
    print_rounds(parser, args.rounds, measure, table)


if __name__ == "__main__":
    main()

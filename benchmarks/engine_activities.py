"""Where the virtual engine's time goes, by activity: every callback its event loop runs on the
whole Mooncake trace, timed and named by what it does.

    python benchmarks/engine_activities.py --rounds 3

Each round runs two fresh child processes, each ``execute`` of the experiment of
``benchmarks/run_phases.py`` (the whole trace, the collector set as a run sets it): one plain,
for the engine's time and the part of it its event loop ran, and one with every callback the loop
schedules (``call_soon``, ``call_at``, and a message's ``deliver_soon``) wrapped in a wall-clock
timer and named (:func:`activity`): a message by its type and the component it goes to, a task's
step or wake-up by its coroutine, anything else by its object's class and method. What the timing
costs is measured on a no-op callback (:func:`timer_costs`) and taken out of each callback's time.
Shares are of the plain run's engine time: "outside the loop" is the plain run's engine less its
loop (the trace read, the run's build, the results drains between the loop's runs), and the loop's
own work is what is left of the plain run's loop time once the callbacks' are taken out. The timed
run costs more than its no-op measure accounts for (the note gives its time), so the callbacks'
rows lean high and the loop's own row, the remainder, low. Figures are medians of the rounds.
Prints a Markdown table (docs/performance.md, block ``engine-activities``:
``python benchmarks/regen_docs.py --only engine-activities``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from run_phases import EXPERIMENT, WHOLE

from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster.config import load_experiment
from disagg.experiments.cli.gc_rules import run_gc
from disagg.experiments.run import execute

SHOWN = 0.01  # activities under this share of the engine are summed in one row


def activity(callback: Any) -> str:
    """What a loop callback does: ``task C.m`` for a step or wake-up of the task running
    coroutine ``C.m``, ``C.m`` for method ``m`` of an object of class ``C``, else the callback's
    qualified name."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        code = getattr(owner.get_coro(), "cr_code", None)
        return f"task {code.co_qualname if code is not None else owner.get_name()}"
    if owner is not None and not isinstance(owner, types.ModuleType):
        return f"{type(owner).__name__}.{callback.__name__}"
    return str(getattr(callback, "__qualname__", type(callback).__name__))


class Activities:
    """Seconds and calls per activity, the wrappers made while each ran (None: outside the loop)
    and the loop's own running time, of the runs made within :meth:`timing`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.made: dict[str | None, int] = {}  # timed callbacks scheduled while each ran
        self.loop_s = 0.0
        self._running: str | None = None

    def _timed(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` timed under ``name`` (its wall s added when it returns)."""
        self.made[self._running] = self.made.get(self._running, 0) + 1
        clock, seconds, calls = time.perf_counter, self.seconds, self.calls

        def run(*args: Any) -> Any:
            self._running = name
            start = clock()
            try:
                return callback(*args)
            finally:
                seconds[name] = seconds.get(name, 0.0) + (clock() - start)
                calls[name] = calls.get(name, 0) + 1
                self._running = None
        return run

    @contextmanager
    def timing(self, callbacks: bool = True) -> Iterator[Activities]:
        """Every :class:`VirtualTimeLoop` made meanwhile runs timed, and its callbacks too
        (``callbacks``; else only the loop's running time is taken)."""
        cls = VirtualTimeLoop
        saved = cls.call_soon, cls.call_at, cls.deliver_soon, cls.run_forever
        call_soon, call_at, deliver_soon, run_forever = saved
        timed = self._timed

        def soon(loop: Any, callback: Any, *args: Any, context: Any = None) -> Any:
            return call_soon(loop, timed(activity(callback), callback), *args, context=context)

        def at(loop: Any, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
            return call_at(loop, when, timed(activity(callback), callback), *args,
                           context=context)

        def deliver(loop: Any, callback: Any, target: Any, message: Any) -> None:
            name = f"message {type(message).__name__} → {type(target).__name__}"
            deliver_soon(loop, timed(name, callback), target, message)

        def forever(loop: Any) -> None:
            start = time.perf_counter()
            try:
                run_forever(loop)
            finally:
                self.loop_s += time.perf_counter() - start

        cls.run_forever = forever  # type: ignore[method-assign]
        if callbacks:
            cls.call_soon, cls.call_at = soon, at  # type: ignore[assignment,method-assign]
            cls.deliver_soon = deliver  # type: ignore[method-assign]
        try:
            yield self
        finally:
            cls.call_soon, cls.call_at, cls.deliver_soon, cls.run_forever = saved  # type: ignore[method-assign]


class _Noop:
    def run(self) -> None:
        """Nothing: the callback the timers' own cost is measured on."""


def timer_costs(repeat: int = 200_000) -> dict[str, float]:
    """What the timing itself costs, in s, measured on a no-op bound method: to schedule one
    timed callback (naming it and making its wrapper: ``make``) and the timer's part inside the
    interval it records (``inside``)."""
    acts, noop, clock = Activities(), _Noop().run, time.perf_counter
    start = clock()
    for _ in range(repeat):
        acts._timed(activity(noop), noop)
    make = (clock() - start) / repeat
    start = clock()
    for _ in range(repeat):
        noop()
    bare = (clock() - start) / repeat
    wrapped = acts._timed("noop", noop)
    for _ in range(repeat):
        wrapped()
    return {"make": make, "inside": max(acts.seconds["noop"] / repeat - bare, 0.0)}


def child(mode: str) -> dict[str, Any]:
    """One run of the whole trace's engine in this process, ``mode`` "plain" or "timed": its wall
    s and its loop's, the requests it ran and (timed) the activities' seconds and calls, the
    wrappers made while each ran and what the timing costs."""
    exp = load_experiment(EXPERIMENT, WHOLE)
    acts = Activities()
    with run_gc(), acts.timing(callbacks=mode == "timed"):
        start = time.perf_counter()
        raw = execute(exp)
        engine_s = time.perf_counter() - start
    return {"engine_s": engine_s, "requests": len(raw["requests"]), "loop_s": acts.loop_s,
            "seconds": acts.seconds, "calls": acts.calls,
            "made": {str(k): v for k, v in acts.made.items()},
            "costs": timer_costs() if mode == "timed" else {}}


def measure(rounds: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``rounds`` pairs of fresh children (plain, timed), interleaved."""
    got = []
    for i in range(rounds):
        pair = tuple(_child_run(mode) for mode in ("plain", "timed"))
        print(f"round {i + 1}: plain {pair[0]['engine_s']:.2f} s, timed {pair[1]['engine_s']:.2f} s",
              file=sys.stderr)
        got.append(pair)
    return got  # type: ignore[return-value]


def _child_run(mode: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} child exited {proc.returncode}: "
                           f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def parts(timed: dict[str, Any]) -> dict[str, float]:
    """One timed run's activities (s each) with the timing's own cost taken out, as measured on a
    no-op callback (``timer_costs``): what each timer added inside the interval it recorded and
    the wrappers made while it ran."""
    costs, made, calls = timed["costs"], timed["made"], timed["calls"]
    return {k: s - calls[k] * costs["inside"] - made.get(k, 0) * costs["make"]
            for k, s in timed["seconds"].items()}


def table(got: list[tuple[dict[str, Any], dict[str, Any]]], rounds: int) -> str:
    """The Markdown table: each activity's callbacks per request, µs each and share of the plain
    run's engine time (medians of the rounds); the loop's own work is what is left of the plain
    run's loop time."""
    split = [parts(t) for _, t in got]
    plain_s = statistics.median(p["engine_s"] for p, _ in got)
    loop_s = statistics.median(p["loop_s"] for p, _ in got)
    timed_s = statistics.median(t["engine_s"] for _, t in got)
    seconds = {k: statistics.median(s.get(k, 0.0) for s in split) for k in split[0]}
    own_s = loop_s - sum(seconds.values())
    n, calls = got[0][1]["requests"], got[0][1]["calls"]
    rows = [
        "| activity (a loop callback, named by what it runs) | per request | µs each | share |",
        "|---|---:|---:|---:|",
    ]
    rest_s, rest_calls, rest_kinds = 0.0, 0, 0
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        if s / plain_s < SHOWN:
            rest_s, rest_calls, rest_kinds = rest_s + s, rest_calls + calls[name], rest_kinds + 1
            continue
        rows.append(f"| `{name}` | {calls[name] / n:.2f} | {s / calls[name] * 1e6:.1f} | "
                    f"{s / plain_s * 100:.1f} % |")
    rows += [
        f"| {rest_kinds} other kinds of callback (each under {SHOWN:.0%}) | {rest_calls / n:.2f} | "
        f"{rest_s / max(rest_calls, 1) * 1e6:.1f} | {rest_s / plain_s * 100:.1f} % |",
        f"| the loop's own work between its {sum(calls.values()) / n:.1f} callbacks a request "
        f"(what is left of its time) | | | {own_s / plain_s * 100:.1f} % |",
        f"| outside the loop (the trace read, the run's build, results drains) | | | "
        f"{(plain_s - loop_s) / plain_s * 100:.1f} % |",
    ]
    costs = {k: statistics.median(t["costs"][k] for _, t in got) for k in ("make", "inside")}
    return (f"`python benchmarks/engine_activities.py --rounds {rounds}` (the whole Mooncake "
            f"trace, {n:,} requests; medians of {rounds} interleaved rounds of fresh processes):"
            f" the engine ran {plain_s:.2f} s plain, {loop_s:.2f} s of it in its event loop, and"
            f" {timed_s:.2f} s with every callback timed. Each callback's time is as timed, less"
            f" what the timing costs on a no-op callback ({costs['make'] * 1e6:.2f} µs to "
            f"schedule one, {costs['inside'] * 1e6:.2f} µs inside the interval it records); "
            f"shares are of the plain run's engine time.\n\n" + "\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    parser.add_argument("--child", choices=("plain", "timed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.rounds < 1:
        parser.error(f"--rounds: value {args.rounds} is not >= 1")
    print(table(measure(args.rounds), args.rounds))


if __name__ == "__main__":
    main()

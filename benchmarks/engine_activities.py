"""Where the virtual engine's time goes, by activity: every callback its event loop runs on the
whole Mooncake trace, timed and named by what it does.

    python benchmarks/engine_activities.py --rounds 3

Each round runs two fresh child processes, each ``execute`` of the experiment of
``benchmarks/run_phases.py`` (the whole trace, the collector set as a run sets it): one plain,
for the engine's time as a run has it, and one with every callback the loop
schedules (``call_soon``, ``call_at``, and a message's ``deliver_soon``) wrapped in a wall-clock
timer and named (:func:`activity`): a message by its type and the component it goes to, a task's
step or wake-up by its coroutine, anything else by its object's class and method. What the timing
costs is measured on a no-op callback (:func:`timer_costs`) and taken out of each callback's time.
Shares are of the timed run and add up: the callbacks (each less the timing's own cost, which
has a row), the time between them (the loop's own work, and the timers' wrappers, which a no-op
cannot price: the timed run is slower than the plain one by more than the no-op measure, and
most of the difference lands here), and "outside the loop" (the trace read, the run's build, the
results drains between the loop's runs). Figures are medians of the rounds.
Prints a Markdown table (docs/performance.md, block ``engine-activities``:
``python benchmarks/regen_docs.py --only engine-activities``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from run_phases import EXPERIMENT, WHOLE, json_child, print_rounds, rounds_parser

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
    """Seconds and calls per activity, the wrappers made while each ran (None: outside the loop),
    the loop's own running time and its steps, of the runs made within :meth:`timing`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.made: dict[str | None, int] = {}  # timed callbacks scheduled while each ran
        self.loop_s = 0.0
        self.steps = 0  # loop steps run
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
    def timing(self) -> Iterator[Activities]:
        """Every :class:`VirtualTimeLoop` made meanwhile runs its callbacks timed, and its own
        running time is taken."""
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
            start, steps = time.perf_counter(), loop.steps
            try:
                run_forever(loop)
            finally:
                self.loop_s += time.perf_counter() - start
                self.steps += loop.steps - steps

        cls.call_soon, cls.call_at = soon, at  # type: ignore[assignment,method-assign]
        cls.deliver_soon, cls.run_forever = deliver, forever  # type: ignore[method-assign]
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


def loop_step_s(steps: int = 200_000) -> float:
    """Wall s of one step of a :class:`VirtualTimeLoop` whose one callback, a no-op, sets the next
    timer: a timer popped, its callback run and the next timer pushed (beside 30 timers far
    ahead, as a unit's pending waits are)."""
    loop = VirtualTimeLoop()
    left = [steps]

    def tick() -> None:
        left[0] -= 1
        if left[0]:
            loop.call_at(loop.now_s + 0.001, tick)
        else:
            loop.stop()

    for i in range(30):
        loop.call_at(1e9 + i, loop.stop)
    loop.call_at(0.001, tick)
    start = time.perf_counter()
    loop.run_forever()
    return (time.perf_counter() - start) / steps


def child(mode: str) -> dict[str, Any]:
    """One run of the whole trace's engine in this process, ``mode`` "plain" or "timed": its wall
    s, the requests it ran and (timed) its loop's wall s, the activities' seconds and calls, the
    wrappers made while each ran and what the timing costs."""
    exp = load_experiment(EXPERIMENT, WHOLE)
    acts = Activities()
    with run_gc(), (acts.timing() if mode == "timed" else nullcontext()):
        start = time.perf_counter()
        raw = execute(exp)
        engine_s = time.perf_counter() - start
    return {"engine_s": engine_s, "requests": len(raw["requests"]), "loop_s": acts.loop_s,
            "seconds": acts.seconds, "calls": acts.calls,
            "made": {str(k): v for k, v in acts.made.items()},
            "steps": acts.steps,
            "costs": (timer_costs() | {"step": loop_step_s()}) if mode == "timed" else {}}


def measure(rounds: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``rounds`` pairs of fresh children (plain, timed), interleaved."""
    got = []
    for i in range(rounds):
        plain, timed = _child_run("plain"), _child_run("timed")
        print(f"round {i + 1}: plain {plain['engine_s']:.2f} s, timed {timed['engine_s']:.2f} s",
              file=sys.stderr)
        got.append((plain, timed))
    return got


def _child_run(mode: str) -> dict[str, Any]:
    """What a fresh child's :func:`child` returned (``--child mode``)."""
    _, result = json_child([sys.executable, __file__, "--child", mode])
    return result


def parts(timed: dict[str, Any]) -> dict[str, float]:
    """One timed run's activities (s each) with the timing's own cost taken out, as measured on a
    no-op callback (``timer_costs``): what each timer added inside the interval it recorded and
    the wrappers made while it ran."""
    costs, made, calls = timed["costs"], timed["made"], timed["calls"]
    return {k: s - calls[k] * costs["inside"] - made.get(k, 0) * costs["make"]
            for k, s in timed["seconds"].items()}


def table(got: list[tuple[dict[str, Any], dict[str, Any]]], rounds: int) -> str:
    """The Markdown table: each activity's callbacks per request, µs each and share of the timed
    run (medians of the rounds), the rest of that run's time split so that the shares add up."""
    timed = [t for _, t in got]
    split = [parts(t) for t in timed]
    plain_s = statistics.median(p["engine_s"] for p, _ in got)
    timed_s = statistics.median(t["engine_s"] for t in timed)
    seconds = {k: statistics.median(s.get(k, 0.0) for s in split) for k in split[0]}
    timing_s = statistics.median(sum(t["seconds"].values()) - sum(s.values())
                                 for t, s in zip(timed, split, strict=True))
    between_s = statistics.median(t["loop_s"] - sum(t["seconds"].values()) for t in timed)
    outside_s = statistics.median(t["engine_s"] - t["loop_s"] for t in timed)
    n, calls = timed[0]["requests"], timed[0]["calls"]
    rows = [
        "| activity (a loop callback, named by what it runs) | per request | µs each | share |",
        "|---|---:|---:|---:|",
    ]
    rest_s, rest_calls, rest_kinds = 0.0, 0, 0
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        if s / timed_s < SHOWN:
            rest_s, rest_calls, rest_kinds = rest_s + s, rest_calls + calls[name], rest_kinds + 1
            continue
        rows.append(f"| `{name}` | {calls[name] / n:.2f} | {s / calls[name] * 1e6:.1f} | "
                    f"{s / timed_s * 100:.1f} % |")
    rows += [
        f"| {rest_kinds} other kinds of callback (each under {SHOWN:.0%}) | {rest_calls / n:.2f} | "
        f"{rest_s / max(rest_calls, 1) * 1e6:.1f} | {rest_s / timed_s * 100:.1f} % |",
        f"| the timing inside the callbacks (as on a no-op) | | | {timing_s / timed_s * 100:.1f} % |",
        f"| between the {sum(calls.values()) / n:.1f} callbacks a request: the loop's own work "
        f"and the timers' wrappers | | | {between_s / timed_s * 100:.1f} % |",
        f"| outside the loop (the trace read, the run's build, results drains) | | | "
        f"{outside_s / timed_s * 100:.1f} % |",
    ]
    costs = {k: statistics.median(t["costs"][k] for t in timed) for k in ("make", "inside", "step")}
    return (f"`python benchmarks/engine_activities.py --rounds {rounds}` (the whole Mooncake "
            f"trace, {n:,} requests; medians of {rounds} interleaved rounds of fresh processes):"
            f" the engine ran {plain_s:.2f} s plain and {timed_s:.2f} s with every callback timed;"
            f" the shares are of the timed run. Each callback's time is as timed, less what the"
            f" timing costs on a no-op callback ({costs['make'] * 1e6:.2f} µs to schedule one, "
            f"{costs['inside'] * 1e6:.2f} µs inside the interval it records), which has a row "
            f"of its own. The loop ran {timed[0]['steps'] / n:.1f} steps a request; a step of a "
            f"no-op timer that sets the next costs it {costs['step'] * 1e6:.2f} µs.\n\n"
            + "\n".join(rows))


def main() -> None:
    parser = rounds_parser(__doc__, 3)
    parser.add_argument("--child", choices=("plain", "timed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    print_rounds(parser, args.rounds, measure, table)


if __name__ == "__main__":
    main()

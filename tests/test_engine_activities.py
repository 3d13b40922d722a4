"""benchmarks/engine_activities.py (docs/performance.md's block ``engine-activities``): what a
loop callback is named, that timing every callback leaves the run as it was and restores the
loop, and the table's arithmetic on figures worked out by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from benchscripts import load_benchmark

from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster.config import load_experiment
from disagg.experiments.run import execute

bench = load_benchmark("engine_activities")
REPO = Path(__file__).resolve().parents[1]


class Unit:
    async def run(self) -> None:
        await asyncio.sleep(0)

    def on_time(self) -> None:
        """A timer's callback."""


def test_a_callback_is_named_by_its_task_coroutine_or_its_object_and_method() -> None:
    loop = VirtualTimeLoop()
    task = loop.create_task(Unit().run())
    steps = [h.callback for h in loop._ready]  # type: ignore[union-attr]  # the task's first step
    assert [bench.activity(s) for s in steps] == ["task Unit.run"]
    assert bench.activity(Unit().on_time) == "Unit.on_time"
    assert bench.activity(test_a_callback_is_named_by_its_task_coroutine_or_its_object_and_method) \
        == "test_a_callback_is_named_by_its_task_coroutine_or_its_object_and_method"
    loop.run_until_complete(task)


def test_timing_every_callback_leaves_the_run_as_it_was_and_the_loop_restored() -> None:
    exp = load_experiment(REPO / "experiments" / "mooncake_conv.toml",
                          {"experiment.engine": "virtual", "experiment.duration_s": 30.0})
    before = (VirtualTimeLoop.call_soon, VirtualTimeLoop.call_at, VirtualTimeLoop.deliver_soon,
              VirtualTimeLoop.run_forever)
    plain = execute(exp)
    acts = bench.Activities()
    with acts.timing():
        timed = execute(exp)
    assert (VirtualTimeLoop.call_soon, VirtualTimeLoop.call_at, VirtualTimeLoop.deliver_soon,
            VirtualTimeLoop.run_forever) == before
    assert timed["requests"] == plain["requests"] and timed["transfers"] == plain["transfers"]
    delivered = len(plain["transfers"])
    assert delivered > 0
    # each KV the fabric moved came to its decode unit as one message; the batches it joined
    # passed boundaries
    assert acts.calls["message KvDelivered → DecodeUnit"] == delivered
    assert acts.calls["DecodeUnit._on_boundary"] >= 1
    assert acts.loop_s > sum(acts.seconds.values()) > 0
    assert acts.steps > 0


def test_a_loop_step_of_a_no_op_timer_is_priced() -> None:
    assert 0 < bench.loop_step_s(1_000) < 1e-3  # s a step: anything but a second per thousand


def _timed(**over: Any) -> dict[str, Any]:
    run = {"engine_s": 12.0, "loop_s": 11.0, "requests": 100, "steps": 950,
           "seconds": {"boundary": 6.0, "message": 2.0, "rare": 0.05},
           "calls": {"boundary": 200, "message": 100, "rare": 1},
           "made": {"boundary": 100, "None": 10},
           "costs": {"make": 0.001, "inside": 0.0005, "step": 1.5e-6}}
    return run | over


def test_the_timings_own_cost_comes_off_each_activity_as_measured_on_a_no_op() -> None:
    seconds = bench.parts(_timed())
    # boundary: 6 - 200 calls x 0.0005 inside - 100 wrappers made x 0.001; message: 2 - 100 x 0.0005
    assert seconds == {"boundary": 6.0 - 0.1 - 0.1, "message": 2.0 - 0.05,
                       "rare": 0.05 - 0.0005}


def test_the_table_lists_the_large_parts_of_the_timed_run_and_its_shares_add_up() -> None:
    text = bench.table([({"engine_s": 10.0}, _timed())], 1)
    rows = [r for r in text.splitlines() if r.startswith("| ") and "%" in r]
    shares = [float(r.rsplit("|", 2)[1].strip(" %")) for r in rows]
    assert abs(sum(shares) - 100.0) < 0.2
    assert rows[0] == "| `boundary` | 2.00 | 29000.0 | 48.3 % |"  # 5.8 s of 12, 200 calls
    assert rows[1] == "| `message` | 1.00 | 19500.0 | 16.2 % |"
    assert "1 other kinds of callback" in text  # "rare" is under 1 %
    # the timing: 8.05 s timed less 7.7995 s left; between: 11 s of loop less 8.05 s timed;
    # outside: 12 - 11 s
    assert [r.rsplit("|", 2)[1].strip() for r in rows[-3:]] == ["2.1 %", "24.6 %", "8.3 %"]
    assert "ran 10.00 s plain and 12.00 s with every callback timed" in text
    assert "The loop ran 9.5 steps a request; a step of a no-op timer that sets the next costs " \
        "it 1.50 µs." in text

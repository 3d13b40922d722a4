"""A stop request (the first Ctrl-C) gets a turn however many closed-loop users queue up (issue
30: with a million users the prefill unit re-sorted its whole queue per assignment and the stop
waited 400 s). The virtual engine checks the stop between loop steps; the run must end within a
bounded number of steps after it, the same bound for 20 thousand users as for 2 thousand — counted in
loop steps, not wall time, so machine load cannot fail it."""

from __future__ import annotations

import bisect

import pytest
from conftest import make_experiment, make_request
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.actors.components.prefill_queue import queued_at, take
from disagg.actors.engines.engine import run_engine
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual import VirtualEngine
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.policies.base import QueuedPrefill

STOP_AFTER_STEPS = 20_000  # long enough for the prefill queues to hold thousands of requests
STEPS_TO_END = 50  # steps the engine may take from the stop to the end of the run


class StopAfterSteps(StopFlag):
    """A stop requested once the loop has polled it ``steps`` times (once per loop step)."""

    def __init__(self, steps: int, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self.polls, self.steps, self.loop = 0, steps, loop
        self.at_step = -1  # the loop's step count when the stop was requested

    @property  # (StopFlag's is a plain attribute: this counts the loop's reads of it)
    def requested(self) -> bool:  # type: ignore[override]
        self.polls += 1
        if self.polls >= self.steps and self.at_step < 0:
            self.at_step = self.loop.steps
            self.request("interrupted")
        return self._requested

    @requested.setter
    def requested(self, value: bool) -> None:
        self._requested = value


@pytest.mark.parametrize("users", [2_000, 20_000])
def test_a_stop_ends_a_huge_closed_loop_run_within_bounded_steps(users: int) -> None:
    exp = make_experiment(workload={"kind": "closed_loop", "users": users, "think_time_s": 0.01},
                          experiment__duration_s=60.0)
    engine = VirtualEngine(exp)
    stop = StopAfterSteps(STOP_AFTER_STEPS, engine.loop)
    results = run_engine(engine, stop)
    assert results.ending.kind == "stopped"
    after_stop = engine.loop.steps - stop.at_step
    assert 0 <= after_stop <= STEPS_TO_END
    interrupted = [r for r in results.requests if r["reason"] == "interrupted"]
    assert len(interrupted) > users // 10  # the stop came with a long queue still waiting


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5]), min_size=1, max_size=30),
       picks=st.sets(st.integers(0, 29)))
def test_the_prefill_queue_matches_a_stable_sort_and_a_full_scan(times: list[float],
                                                                 picks: set[int]) -> None:
    queue: list[QueuedPrefill] = []
    for i, t in enumerate(times):  # equal times: the later one after, as a stable sort puts it
        bisect.insort_right(queue, QueuedPrefill(make_request(request_id=i), t), key=queued_at)
    assert queue == sorted((QueuedPrefill(make_request(request_id=i), t)
                            for i, t in enumerate(times)), key=lambda q: q.queued_s)
    chosen = {i for i in picks if i < len(times)}
    taken, rest = take(queue, chosen)
    assert taken == tuple(q.request for q in queue if q.request.request_id in chosen)
    assert rest == [q for q in queue if q.request.request_id not in chosen]

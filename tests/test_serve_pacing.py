"""Token pacing on its own: tokens come out in order, no earlier than their wall times, a re-plan
moves the tokens not yet released, and a request that ends early ends the stream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from disagg.actors.components.gateway import PlanUpdate
from disagg.experiments.serve.pacing import Due, Ended, TokenPacer


class Replanning:
    """Plan versions served in turn: each ``wait`` returns the next one."""

    def __init__(self, plans: list[tuple[float | None, tuple[float, ...], str]]) -> None:
        self.t0 = time.time()
        self.dilation = 1.0
        self.plans = plans
        self.asked: list[tuple[int, int]] = []  # (version, from_index) of every poll

    async def wait(self, rid: int, version: int, from_index: int, timeout_s: float) -> Any:
        self.asked.append((version, from_index))
        v = min(version + 1, len(self.plans) - 1)
        first, times, status = self.plans[v]
        return PlanUpdate(rid, v, first, times[from_index:], from_index, status, "why", None)


async def _collect(pacer: TokenPacer) -> list[tuple[Any, float]]:
    return [(ev, time.time() - pacer.backend.t0) async for ev in pacer.events()]


def test_tokens_come_in_order_at_or_after_their_times_and_follow_a_replan() -> None:
    # v0: first token at 30 ms, decode at 40, 50, 60 ms; v1 (a join cut the run at 40 ms):
    # decode at 40, then 70, 90 ms
    backend = Replanning([(0.03, (0.04, 0.05, 0.06), ""), (0.03, (0.04, 0.07, 0.09), "")])
    out = asyncio.run(_collect(TokenPacer(backend, 0, 4)))  # type: ignore[arg-type]
    released = [(ev.start, ev.count) for ev, _ in out]
    assert all(isinstance(ev, Due) for ev, _ in out)
    assert sum(c for _, c in released) == 4
    assert [s for s, _ in released] == sorted(s for s, _ in released)
    due_s = [0.03, 0.04, 0.07, 0.09]  # the re-planned times
    for ev, at_s in out:
        assert at_s >= due_s[ev.start + ev.count - 1] - 1e-3  # never early (1 ms clock slack)
    assert backend.asked[0] == (-1, 0)


def test_a_rejected_request_ends_the_stream_without_tokens() -> None:
    backend = Replanning([(None, (), ""), (None, (), "rejected")])
    out = asyncio.run(_collect(TokenPacer(backend, 0, 3)))  # type: ignore[arg-type]
    assert [ev for ev, _ in out] == [Ended("rejected", "why")]

"""Re-forming a prefill unit's running batch for a request that came late.

A request whose modeled arrival precedes the start of the batch now running (lag on the ray
engine: the unit had already decided without it) re-forms that batch: while the batch has not
ended and nothing about it has left the unit but a load report (no layer-wise KV hand-over, no
first tokens to a gateway, no prefix-cache blocks taken), the batch's start is undone — queue,
free time and last decision as they were — and the unit decides again from there with the late
request eligible, as it would have on time. Whether it re-forms is the time gate's rule
(``TimeGate.may_reform``, counted as ``reformed_batches``); the virtual engine delivers no message
late, so it never re-forms. Mixed into :class:`~disagg.actors.components.prefill.PrefillUnit`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from disagg.actors.components.prefill_queue import queued_at
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import Clock
from disagg.cluster.messages import Request
from disagg.cluster.records import PrefillRecord
from disagg.policies.base import QueuedPrefill


@dataclass(frozen=True)
class BatchStart:
    """What starting the running batch changed, to undo it: the queue, the unit's free time and
    last decision (emu s) before it, and the batch's requests."""

    queue: tuple[QueuedPrefill, ...]
    free_at_s: float
    last_decision_s: float
    batch_start_s: float
    requests: tuple[Request, ...]


def _end_sleep(ended: asyncio.Future[bool]) -> None:
    if not ended.done():
        ended.set_result(False)


class BatchReforms:
    """The prefill unit's sleep through its running batch, and the undoing of the batch's start
    when a late request re-forms it."""

    clock: Clock
    queue: list[QueuedPrefill]
    queued_tokens: int
    free_at_s: float
    batch_start_s: float
    last_decision_s: float
    decisions: int
    running: tuple[Request, ...]
    batches: int
    log: UnitLog
    _started: dict[int, PrefillRecord]
    _start: BatchStart | None  # the running batch, while it may be re-formed
    _reform: asyncio.Future[bool] | None  # resolved True to re-form it

    async def _sleep_unless_reformed(self, end_s: float, start: BatchStart | None) -> bool:
        """Sleep until the running batch's end (emu s), as ``Clock.sleep_until`` does (the same
        timer, so the same event order); True if a late request re-formed the batch meanwhile
        (``start``: what to undo, None if the batch cannot be re-formed)."""
        delay = self.clock.loop_delay_s(end_s)
        if delay <= 0:
            return False
        loop = self.clock.event_loop()
        ended: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(delay, _end_sleep, ended)
        self._start, self._reform = start, ended
        try:
            return await ended
        finally:
            timer.cancel()
            self._start, self._reform = None, None

    def _undo_start(self, start: BatchStart) -> None:
        """Undo the running batch's start (a request that came late is queued): the unit decides
        again from where it stood before it; what it told the router is corrected by the load
        reports of the batch it then starts."""
        taken = {q.request.request_id for q in start.queue}
        self.queue = sorted([*start.queue, *(q for q in self.queue
                                             if q.request.request_id not in taken)],
                            key=queued_at)
        self.queued_tokens = sum(q.request.prompt_tokens for q in self.queue)
        self.free_at_s, self.batch_start_s = start.free_at_s, start.batch_start_s
        self.last_decision_s = start.last_decision_s
        self.decisions -= 1
        self.running = ()
        self.batches -= 1
        self.log.undo_work()
        for r in start.requests:
            del self._started[r.request_id]
        assert self._reform is not None
        self._reform.set_result(True)

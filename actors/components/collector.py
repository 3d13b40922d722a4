"""The collector: every request's one final status, and when the run is over."""

from __future__ import annotations

import asyncio
from typing import Any

from disagg.actors.components.live_aggregate import LiveAggregator
from disagg.actors.components.live_state import StateReport
from disagg.cluster.component import Clock, Component
from disagg.cluster.messages import ArrivalsDone, RequestEnded, RequestRedone


class DuplicateStatus(RuntimeError):
    """A request was ended twice: a bug in a component."""


class Collector(Component):
    """Counts final statuses; ``done`` is set once every submitted request has ended."""

    def __init__(self, name: str, clock: Clock, forward_ended_to: str | None = None) -> None:
        super().__init__(name, clock)
        self.forward_ended_to = forward_ended_to  # closed-loop workloads: the load generator
        self.ended: dict[int, RequestEnded] = {}
        self.submitted: int | None = None
        self.done = asyncio.Event()
        self.redone: dict[int, str] = {}  # request id -> the unit it lost
        self.ignored_ends = 0
        self._counts = {"completed": 0, "rejected": 0, "failed": 0, "cancelled": 0}
        self.live = LiveAggregator()
        self.handlers = {RequestEnded: self._on_ended, ArrivalsDone: self._on_arrivals_done,
                         RequestRedone: self._on_redone, StateReport: self.live.add}

    def _on_redone(self, msg: RequestRedone) -> None:
        self.redone[msg.request_id] = msg.lost_unit

    def _on_ended(self, msg: RequestEnded) -> None:
        if msg.request_id in self.ended and msg.request_id in self.redone:
            self.ignored_ends += 1  # a redone request: its first end stands
            return
        if msg.request_id in self.ended:
            raise DuplicateStatus(
                f"request {msg.request_id} ended twice: {self.ended[msg.request_id].status} "
                f"then {msg.status}"
            )
        self.ended[msg.request_id] = msg
        self._counts[msg.status] += 1
        if msg.status != "completed":
            self.live.forget(msg.request_id)
        if self.forward_ended_to is not None:
            self.peers[self.forward_ended_to].send(msg)
        self._check_done()

    def _on_arrivals_done(self, msg: ArrivalsDone) -> None:
        self.submitted = msg.submitted
        self._check_done()

    def _check_done(self) -> None:
        if self.submitted is not None and len(self.ended) >= self.submitted:
            self.done.set()

    def ended_ids(self) -> frozenset[int]:
        """Ids of the requests that have ended so far (the engine's :class:`RunLedger` view)."""
        return frozenset(self.ended)

    def counts(self) -> dict[str, int]:
        """Requests ended so far, by status."""
        return dict(self._counts)

    def results(self) -> dict[str, Any]:
        out = super().results()
        out["requests"] = {
            rid: {"status": m.status, "reason": m.reason, "end_s": m.sent_s}
            for rid, m in self.ended.items()
        }
        out["submitted"] = self.submitted
        out["redone"] = dict(self.redone)
        out["ignored_ends"] = self.ignored_ends
        return out

    def snapshot(self) -> dict[str, Any]:
        """Counts by status and, under ``live``, the cluster picture built from state reports."""
        return {"name": self.name, "submitted": self.submitted, **self.counts(),
                "live": self.live.snapshot(self.clock.now())}

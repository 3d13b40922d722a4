"""The collector: every request's one final status, and when the run is over."""

from __future__ import annotations

import asyncio
from typing import Any

from disagg.actors.live_aggregate import LiveAggregator
from disagg.actors.live_state import StateReport
from disagg.cluster.component import Clock, Component
from disagg.cluster.messages import ArrivalsDone, RequestEnded


class DuplicateStatus(RuntimeError):
    """A request was ended twice: a bug in a component."""


class Collector(Component):
    """Counts final statuses; ``done`` is set once every submitted request has ended."""

    def __init__(self, name: str, clock: Clock) -> None:
        super().__init__(name, clock)
        self.ended: dict[int, RequestEnded] = {}
        self.submitted: int | None = None
        self.done = asyncio.Event()
        self._counts = {"completed": 0, "rejected": 0, "failed": 0}
        self.live = LiveAggregator()
        self.handlers = {RequestEnded: self._on_ended, ArrivalsDone: self._on_arrivals_done,
                         StateReport: self.live.add}

    def _on_ended(self, msg: RequestEnded) -> None:
        if msg.request_id in self.ended:
            raise DuplicateStatus(
                f"request {msg.request_id} ended twice: {self.ended[msg.request_id].status} "
                f"then {msg.status}"
            )
        self.ended[msg.request_id] = msg
        self._counts[msg.status] += 1
        if msg.status != "completed":
            self.live.forget(msg.request_id)
        self._check_done()

    def _on_arrivals_done(self, msg: ArrivalsDone) -> None:
        self.submitted = msg.submitted
        self._check_done()

    def _check_done(self) -> None:
        if self.submitted is not None and len(self.ended) >= self.submitted:
            self.done.set()

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
        return out

    def snapshot(self) -> dict[str, Any]:
        """Counts by status and, under ``live``, the cluster picture built from state reports."""
        return {"name": self.name, "submitted": self.submitted, **self.counts(),
                "live": self.live.snapshot(self.clock.now())}

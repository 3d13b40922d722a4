"""The closed-loop load generator: each user's next request follows the end of its previous one
(chat users, ``ClosedLoop``; agent tasks' dependent calls, ``AgentSessions``).

The collector forwards every ``RequestEnded`` here (only for closed-loop workloads); the user then
thinks and sends again. A request's next one is timed from the modeled end (``sent_s``), so a
late delivery shows as lag rather than as a shifted workload.
"""

from __future__ import annotations

import heapq
from typing import Any

from disagg.actors.components.load_generator import LoadGenerator
from disagg.cluster.component import Clock
from disagg.cluster.messages import ArrivalsDone, Request, RequestEnded
from disagg.cluster.wake import Wake
from disagg.cluster.workload.plan import ClosedLoop
from disagg.cluster.workload.sessions import AgentSessions


class ClosedLoopGenerator(LoadGenerator):
    """Drives a :class:`ClosedLoop`: sends each planned request at its arrival time and asks for
    the user's next one when a ``RequestEnded`` comes back. ``ArrivalsDone`` goes out once every
    user has stopped (its next arrival would fall after ``duration_s``, or the cap is reached)."""

    def __init__(self, name: str, clock: Clock, loop: ClosedLoop | AgentSessions) -> None:
        super().__init__(name, clock, [])
        self.loop = loop
        self.last_arrival_s = 0.0
        self._pending: list[tuple[float, int, Request]] = []
        self._wake = Wake()
        self.handlers = {RequestEnded: self._on_ended}

    def _push(self, request: Request | None) -> None:
        if request is not None:
            heapq.heappush(self._pending, (request.arrival_s, request.request_id, request))
        self._wake.set()

    def _on_ended(self, msg: RequestEnded) -> None:
        self._push(self.loop.after(msg.request_id, msg.sent_s, msg.status))

    async def run(self) -> None:
        for request in self.loop.start():
            self._push(request)
        while self._pending or self.loop.active_users > 0:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            t = self._pending[0][0]
            self._wake.clear()
            if await self.clock.wait_until(t, self._wake):
                continue
            if self.stopped:
                return
            _, _, request = heapq.heappop(self._pending)
            self.act_at(t)
            self._sent(request, t)
            self.last_arrival_s = max(self.last_arrival_s, request.arrival_s)
        self._flush(self.last_arrival_s)
        self.peers["collector"].send(ArrivalsDone(self.sent, sent_s=self.last_arrival_s))

    def arrivals_end_s(self) -> float:
        """No request is sent at or after the run's duration."""
        return self.loop.duration_s

    def results(self) -> dict[str, Any]:
        """The base results and, for agent sessions, one row per task (``tasks.parquet``)."""
        out = super().results()
        if isinstance(self.loop, AgentSessions):
            out["tasks"] = self.loop.task_rows()
        return out

    def snapshot(self) -> dict[str, Any]:
        out = {**super().snapshot(), "users_active": self.loop.active_users}
        if isinstance(self.loop, AgentSessions):
            out["tasks_total"] = len(self.loop.tasks)
            out["tasks"] = self.loop.counts()
        return out

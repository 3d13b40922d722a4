"""The load generator: samples the workload once, then sends each request at its arrival time.

The ``Request`` it sends is its per-request record (arrival, lengths, SLO targets); it also tells
the collector, in batches of :data:`ARRIVAL_BATCH`, which requests it sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.facts import slo_targets
from disagg.cluster.messages import Arrivals, ArrivalsDone, Request, RequestArrived
from disagg.cluster.workload.kinds import AgenticWorkload, ClosedLoopWorkload
from disagg.cluster.workload.plan import plan_requests

ARRIVAL_BATCH = 1024
"""Requests per ``Arrivals`` message to the collector."""


def make_requests(exp: Experiment, rng: np.random.Generator) -> Sequence[Request]:
    """The experiment's open-loop request stream, in arrival order (emu seconds)."""
    if isinstance(exp.workload, ClosedLoopWorkload | AgenticWorkload):
        raise TypeError("a closed-loop workload has no request list planned ahead")
    return plan_requests(exp.workload, slo_targets(exp), exp.experiment.duration_s, rng)


class LoadGenerator(Component):
    """Sends ``RequestArrived`` to the router at each request's arrival time."""

    def __init__(self, name: str, clock: Clock, requests: Sequence[Request]) -> None:
        super().__init__(name, clock)
        self.requests = requests
        self.sent = 0
        self.stopped = False
        self._batch: list[Request] = []

    def _sent(self, request: Request, t: float) -> None:
        """``request`` went to the router at emu time ``t``: tell the collector (batched)."""
        self.peers["router"].send(RequestArrived(request, sent_s=t))
        self.sent += 1
        self._batch.append(request)
        if len(self._batch) >= ARRIVAL_BATCH:
            self._flush(t)

    def _flush(self, t: float) -> None:
        if self._batch:
            self.peers["collector"].send(Arrivals(tuple(self._batch), t))
            self._batch = []

    async def run(self) -> None:
        for request in self.requests:
            await self.clock.sleep_until(request.arrival_s)
            if self.stopped:
                return
            self.act_at(request.arrival_s)
            self._sent(request, request.arrival_s)
        last = self.requests[-1].arrival_s if self.requests else 0.0
        self._flush(last)
        self.peers["collector"].send(ArrivalsDone(len(self.requests), sent_s=last))

    def arrivals_end_s(self) -> float:
        """Emu time by which every arrival has happened (the drain deadline counts from it)."""
        return self.requests[-1].arrival_s if self.requests else 0.0

    def stop_arrivals(self) -> tuple[Request, ...]:
        """Submit nothing more (an interrupted run); returns the requests sent but not yet
        reported to the collector (the engine reports them before its last drain)."""
        self.stopped = True
        batch, self._batch = tuple(self._batch), []
        return batch

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "submitted": self.sent, "total": len(self.requests)}

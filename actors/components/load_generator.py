"""The load generator: samples the workload once, then sends each request at its arrival time."""

from __future__ import annotations

from typing import Any

import numpy as np

from disagg.cluster.component import Clock, Component
from disagg.cluster.config import Experiment
from disagg.cluster.messages import ArrivalsDone, Request, RequestArrived
from disagg.cluster.workload.kinds import ClosedLoopWorkload
from disagg.cluster.workload.plan import SloTargets, plan_requests


def slo_targets(exp: Experiment) -> SloTargets:
    """The experiment's default SLO targets."""
    return SloTargets(exp.slo.ttft_s, exp.slo.tpot_s)


def make_requests(exp: Experiment, rng: np.random.Generator) -> list[Request]:
    """The experiment's open-loop request stream, in arrival order (emu seconds)."""
    if isinstance(exp.workload, ClosedLoopWorkload):
        raise TypeError("a closed-loop workload has no request list planned ahead")
    return plan_requests(exp.workload, slo_targets(exp), exp.experiment.duration_s, rng)


class LoadGenerator(Component):
    """Sends ``RequestArrived`` to the router at each request's arrival time."""

    def __init__(self, name: str, clock: Clock, requests: list[Request]) -> None:
        super().__init__(name, clock)
        self.requests = requests
        self.sent = 0
        self.stopped = False

    async def run(self) -> None:
        router = self.peers["router"]
        for request in self.requests:
            await self.clock.sleep_until(request.arrival_s)
            if self.stopped:
                return
            self.act_at(request.arrival_s)
            router.send(RequestArrived(request, sent_s=request.arrival_s))
            self.sent += 1
        last = self.requests[-1].arrival_s if self.requests else 0.0
        self.peers["collector"].send(ArrivalsDone(len(self.requests), sent_s=last))

    def arrivals_end_s(self) -> float:
        """Emu time by which every arrival has happened (the drain deadline counts from it)."""
        return self.requests[-1].arrival_s if self.requests else 0.0

    def stop_arrivals(self) -> None:
        """Submit nothing more (an interrupted run); results hold only the requests sent."""
        self.stopped = True

    def results(self) -> dict[str, Any]:
        """The submitted requests' arrival facts (only those sent, if arrivals were stopped)."""
        out = super().results()
        out["requests"] = {
            r.request_id: {
                "slo_class": r.slo_class, "arrival_s": r.arrival_s,
                "prompt_tokens": r.prompt_tokens, "output_tokens": r.output_tokens,
                "ttft_slo_s": r.ttft_slo_s, "tpot_slo_s": r.tpot_slo_s,
            }
            for r in self.requests[: self.sent]
        }
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "submitted": self.sent, "total": len(self.requests)}

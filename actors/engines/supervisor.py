"""The driver's watch over a ray-engine run: progress, errors, lost units, injected unit loss.

Every ``failure_poll_s`` the supervisor pings the unit actors; one whose actor has died (its node
went away, or ``faults.unit_loss`` killed it) is reported to the router as ``UnitDown`` together
with the requests the collector has already ended, and the router redoes the rest from prefill.
A lost control-plane actor ends the run with an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray

from disagg.actors.engines.build import unit_ids
from disagg.cluster.config import Experiment
from disagg.cluster.messages import UnitDown


class RayEngineError(RuntimeError):
    """A component failed inside its actor, or a control-plane actor was lost."""


class Supervisor:
    """Waits for the collector to finish while watching the unit actors."""

    def __init__(self, exp: Experiment, handles: dict[str, Any], t0: float,
                 lost: dict[str, str]) -> None:
        self.exp = exp
        self.handles = handles
        self.t0 = t0
        self.lost = lost
        self.units = list(unit_ids(exp))
        self.faults = sorted(exp.faults.unit_loss, key=lambda f: f.at_s)
        self._next_check = 0.0

    def emu_now(self) -> float:
        return (time.time() - self.t0) / self.exp.experiment.dilation

    def wait(self, deadline: float, poll_s: float,
             progress: Callable[[dict[str, Any]], None] | None,
             drain: Callable[[], None] | None = None) -> None:
        """Return when every request has ended or at ``deadline`` (wall clock); ``drain`` is
        called every poll (finished rows into the results)."""
        collector = self.handles["collector"]
        while time.time() < deadline:
            if ray.get(collector.wait_done.remote(min(poll_s, deadline - time.time()))):
                return
            status = ray.get(collector.status.remote())
            if status["errors"]:
                raise RayEngineError("; ".join(status["errors"]))
            if drain is not None:
                drain()
            self._inject_faults()
            if time.time() >= self._next_check:
                self._next_check = time.time() + self.exp.placement.failure_poll_s
                self._check_units()
            if progress is not None:
                progress({"now_s": status["now_s"], **status["snapshot"]})

    def _inject_faults(self) -> None:
        while self.faults and self.faults[0].at_s <= self.emu_now():
            fault = self.faults.pop(0)
            ray.kill(self.handles[fault.unit], no_restart=True)

    def _check_units(self) -> None:
        alive = [n for n in self.units if n not in self.lost]
        refs = {self.handles[n].ping.remote(): n for n in alive}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=5.0)
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._unit_down(refs[ref], type(e).__name__)

    def _unit_down(self, name: str, why: str) -> None:
        self.lost[name] = why
        ended = frozenset(ray.get(self.handles["collector"].ended_ids.remote()))
        self.handles["router"].deliver.remote(UnitDown(name, ended, self.emu_now()))

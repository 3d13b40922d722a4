"""The driver's watch over a ray-engine run: progress, errors, lost actors, the fault schedule.

Every ``failure_poll_s`` the supervisor pings every actor, control plane included. A ping answers
with the errors its component has raised so far, so an error inside any actor surfaces at once
(:class:`RayEngineError`). A unit whose actor has died (its node went away, or a fault killed it)
is reported to the router as ``UnitDown`` together with the requests the collector has already
ended, and the router redoes the rest from prefill. A lost control-plane actor (collector, router,
fabric, load generator) ends the run: :class:`ComponentLost`. The fault schedule is played through
:class:`RayFaultHost` (a killed unit's actor really dies: ``ray.kill``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray

from disagg.actors.engines.build import CONTROL, experiment_faults
from disagg.actors.engines.faults import FaultPlayer
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.messages import UnitDown, UnitUp

PING_TIMEOUT_S = 5.0  # wall seconds an actor may take to answer a ping before the next check
FAULT_LEAD_S = 2.0  # emu s: speed and link changes are handed over this early (stamped with
# their own time, applied by the receiver then), so polling and message latency cannot delay them


class RayEngineError(RuntimeError):
    """A component failed inside its actor."""


class ComponentLost(RuntimeError):
    """A control-plane actor died: the run cannot go on."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"the {name} actor was lost ({why})")
        self.name = name


class RayFaultHost:
    """The ray engine's side of the fault schedule: ``ray.kill`` a unit's actor, start a fresh
    one in its place (every peer is re-pointed to it), deliver messages."""

    def __init__(self, sup: Supervisor, start_unit: Callable[[str], Any]) -> None:
        self.sup = sup
        self.start_unit = start_unit

    def kill_unit(self, unit: str, at_s: float) -> None:
        """The unit's actor dies; on an actor hosting other units too, only the unit stops."""
        if self.sup.shared(unit):
            self.sup.handles[unit].stop_component.remote(unit)
        else:
            ray.kill(self.sup.handles[unit], no_restart=True)
        self.sup.unit_down(unit, "killed by an injected fault", at_s)

    def restart_unit(self, unit: str, at_s: float) -> None:
        if self.sup.shared(unit):  # its actor lives on: a fresh component in it
            try:
                ray.get(self.sup.handles[unit].restart_component.remote(unit))
            except ray.exceptions.RayActorError:
                pass  # the whole actor died meanwhile: the unit gets an actor of its own
            else:
                self.sup.lost.pop(unit, None)
                self.sup.handles["router"].deliver.remote(UnitUp(unit, at_s), "router")
                return
        handle = self.start_unit(unit)
        self.sup.handles[unit] = handle
        ray.get([h.repoint.remote(unit, handle) for n, h in self.sup.handles.items()
                 if n not in self.sup.lost and n != unit])
        self.sup.lost.pop(unit, None)
        self.sup.handles["router"].deliver.remote(UnitUp(unit, at_s), "router")

    def send(self, component: str, message: Any) -> None:
        self.sup.handles[component].deliver.remote(message, component)


class Supervisor:
    """Waits for the collector to finish while watching every actor and playing the faults."""

    def __init__(self, exp: Experiment, handles: dict[str, Any], t0: float,
                 lost: dict[str, str], start_unit: Callable[[str], Any] | None = None) -> None:
        self.exp = exp
        self.handles = handles
        self.t0 = t0
        self.lost = lost
        self.player = FaultPlayer(experiment_faults(exp),
                                  RayFaultHost(self, start_unit or _no_restart))
        self._next_check = 0.0

    def emu_now(self) -> float:
        return (time.time() - self.t0) / self.exp.experiment.dilation

    def _timeout_s(self, deadline: float, poll_s: float) -> float:
        next_fault = self.player.next_at_s(FAULT_LEAD_S)
        until_fault = (poll_s if next_fault is None
                       else (next_fault - self.emu_now()) * self.exp.experiment.dilation)
        return max(0.0, min(poll_s, deadline - time.time(), until_fault))

    def wait(self, deadline: float, poll_s: float,
             progress: Callable[[dict[str, Any]], None] | None,
             stop: StopFlag | None = None, drain: Callable[[], None] | None = None) -> str:
        """Until every request has ended (``"done"``), ``deadline`` (wall clock, ``"deadline"``)
        or a stop request (``"stopped"``); raises on a component error or a lost control actor.
        ``drain`` is called every poll (finished rows into the results)."""
        collector = self.handles["collector"]
        while time.time() < deadline:
            if stop is not None and stop.requested:
                return "stopped"
            try:
                if ray.get(collector.wait_done.remote(self._timeout_s(deadline, poll_s))):
                    return "done"
                status = ray.get(collector.status.remote())
            except ray.exceptions.RayActorError as e:
                raise ComponentLost("collector", type(e).__name__) from None
            if status["errors"]:
                raise RayEngineError("; ".join(status["errors"]))
            if drain is not None:
                drain()
            self.player.play_due(self.emu_now(), FAULT_LEAD_S)
            if time.time() >= self._next_check:
                self._next_check = time.time() + self.exp.placement.failure_poll_s
                self.check_actors()
            if progress is not None:
                progress({"now_s": status["now_s"], **status["snapshot"]})
        return "deadline"

    def shared(self, unit: str) -> bool:
        """True if ``unit``'s actor hosts other units too (``[placement] units_per_actor``)."""
        handle = self.handles[unit]
        return sum(h == handle for h in self.handles.values()) > 1

    def check_actors(self) -> None:
        """Ping every live actor: raise on a component's error or a lost control actor; report
        every unit of a lost actor to the router."""
        alive = [n for n in self.handles if n not in self.lost]
        refs = {self.handles[n].ping.remote(): n for n in _one_per_actor(self.handles, alive)}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=PING_TIMEOUT_S)
        for ref in ready:
            name = refs[ref]
            try:
                errors = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                if name in CONTROL:
                    raise ComponentLost(name, type(e).__name__) from None
                handle = self.handles[name]
                for unit in [n for n in alive if self.handles[n] == handle]:
                    self.unit_down(unit, type(e).__name__, self.emu_now())
                continue
            if errors:
                raise RayEngineError("; ".join(errors))

    def unit_down(self, name: str, why: str, at_s: float) -> None:
        """Record ``name`` as lost and tell the router, with the requests already ended."""
        self.lost[name] = why
        try:
            ended = frozenset(ray.get(self.handles["collector"].ended_ids.remote()))
        except ray.exceptions.RayActorError as e:
            raise ComponentLost("collector", type(e).__name__) from None
        self.handles["router"].deliver.remote(UnitDown(name, ended, at_s), "router")


def _one_per_actor(handles: dict[str, Any], names: list[str]) -> list[str]:
    """The first of ``names`` on each actor."""
    seen: set[Any] = set()
    out = []
    for name in names:
        if handles[name] not in seen:
            seen.add(handles[name])
            out.append(name)
    return out


def _no_restart(unit: str) -> Any:
    raise RayEngineError(f"cannot restart {unit}: this run has no way to start actors")

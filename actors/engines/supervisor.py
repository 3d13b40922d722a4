"""The driver's watch over a ray-engine run: progress, errors, lost actors, the fault schedule.

Every ``failure_poll_s`` the supervisor pings every actor, control plane included. A ping raises
the first exception a hosted component raised, typed (:class:`ComponentFailed`, naming it), so a
failure inside any actor ends the run at once. A ping left unanswered for ``hang_timeout_s`` (the
actor is alive but makes no progress: stopped, deadlocked) declares the actor hung, handled as
lost. A unit whose actor has died (its node went away, or a fault killed it)
is reported to the router as ``UnitDown`` together with the requests the collector has already
ended, and the router redoes the rest from prefill. A lost control-plane actor (collector, router,
fabric, load generator) ends the run: :class:`ComponentLost`. The fault schedule is played through
:class:`RayFaultHost` (a killed unit's actor really dies: ``ray.kill``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import ray

from disagg.actors.engines.faults import FaultPlayer
from disagg.actors.engines.roles import LedgerFacade, UnitsFacade, reraise_typed
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.facts import CONTROL, SERVE_CONTROL, experiment_faults
from disagg.cluster.messages import UnitDown, UnitUp

PING_TIMEOUT_S = 5.0  # wall seconds an actor may take to answer a ping before the next check
FAULT_LEAD_S = 2.0  # emu s: speed and link changes are handed over this early (stamped with
# their own time, applied by the receiver then), so polling and message latency cannot delay them


class RayEngineError(RuntimeError):
    """The ray engine cannot do what the run asks (e.g. restart a unit without a way to start
    actors)."""


class ComponentLost(RuntimeError):
    """A control-plane actor died: the run cannot go on."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"the {name} actor was lost ({why})")
        self.name = name


class ClusterGone(RuntimeError):
    """The Ray cluster's control store (GCS) no longer answers: the run cannot go on (Ray ends
    the driver's process about a minute later, so the results must be written before)."""


def gcs_reachable(address: str | None, timeout_s: float = 1.0) -> bool:
    """Whether the GCS at ``address`` (HOST:PORT) accepts a TCP connection (True if unknown)."""
    if not address:
        return True
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


class RayFaultHost:
    """The ray engine's side of the fault schedule: ``ray.kill`` a unit's actor, start a fresh
    one in its place (every peer is re-pointed to it), deliver messages."""

    def __init__(self, sup: Supervisor, start_unit: Callable[[str], Any]) -> None:
        self.sup = sup
        self.start_unit = start_unit

    def kill_unit(self, unit: str, at_s: float) -> None:
        """The unit's actor dies; on an actor hosting other units too, only the unit stops."""
        if self.sup.units.shared(unit):
            self.sup.units.stop(unit)
        else:
            ray.kill(self.sup.handles[unit], no_restart=True)
        self.sup.unit_down(unit, "killed by an injected fault", at_s)

    def restart_unit(self, unit: str, at_s: float) -> None:
        if self.sup.units.shared(unit):  # its actor lives on: a fresh component in it
            try:
                self.sup.units.restart(unit)
            except ray.exceptions.RayActorError:
                pass  # the whole actor died meanwhile: the unit gets an actor of its own
            else:
                self.sup.lost.pop(unit, None)
                self.sup.units.send("router", UnitUp(unit, at_s))
                return
        handle = self.start_unit(unit)
        self.sup.handles[unit] = handle
        ray.get([h.repoint.remote(unit, handle) for n, h in self.sup.handles.items()
                 if n not in self.sup.lost and n != unit])
        self.sup.lost.pop(unit, None)
        self.sup.units.send("router", UnitUp(unit, at_s))

    def send(self, component: str, message: Any) -> None:
        """Deliver an engine message (a fault) to ``component``."""
        self.sup.units.send(component, message)


class Supervisor:
    """Waits for the collector to finish while watching every actor and playing the faults."""

    def __init__(self, exp: Experiment, handles: dict[str, Any], t0: float,
                 lost: dict[str, str], start_unit: Callable[[str], Any] | None = None) -> None:
        self.exp = exp
        self.handles = handles
        self.units = UnitsFacade(handles)
        self.ledger = LedgerFacade(handles["collector"])
        self.t0 = t0
        self.lost = lost
        self.control = set(CONTROL) | set(SERVE_CONTROL)
        self.player = FaultPlayer(experiment_faults(exp),
                                  RayFaultHost(self, start_unit or _no_restart))
        self._next_check = 0.0
        self.unanswered: tuple[str, ...] = ()  # actors whose ping is late (maybe hung), by name
        self.gcs_address: str | None = ray.get_runtime_context().gcs_address
        self._gcs_misses = 0  # consecutive checks the GCS did not answer

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
        or a stop request (``"stopped"``); raises :class:`ComponentFailed` when a component
        raised and :class:`ComponentLost` for a lost control actor. ``drain`` is called every
        poll (finished rows into the results)."""
        while time.time() < deadline:
            if stop is not None and stop.requested:
                return "stopped"
            try:
                if self.ledger.wait_done(self._timeout_s(deadline, poll_s)):
                    return "done"
                status = self.ledger.status()
            except ray.exceptions.RayActorError as e:
                raise ComponentLost("collector", type(e).__name__) from None
            if drain is not None:
                drain()
            self.player.play_due(self.emu_now(), FAULT_LEAD_S)
            if time.time() >= self._next_check:
                self._next_check = time.time() + self.exp.placement.failure_poll_s
                self.check_gcs()
                self.check_actors()
            if progress is not None:
                progress({"now_s": status["now_s"], **status["snapshot"]})
        return "deadline"

    def check_gcs(self) -> None:
        """Raise :class:`ClusterGone` once the GCS has not answered two checks in a row (actor
        calls go worker to worker and keep working for a while without it, so only this
        notices)."""
        self._gcs_misses = 0 if gcs_reachable(self.gcs_address) else self._gcs_misses + 1
        if self._gcs_misses >= 2:
            raise ClusterGone(f"the Ray cluster's control store (GCS) at {self.gcs_address} "
                              "is gone")

    def check_actors(self) -> None:
        """Ping every live actor: raise a component's failure or a lost control actor; report
        every unit of a lost actor to the router. An actor that leaves its ping unanswered for
        ``[placement] hang_timeout_s`` wall s (alive but not answering: stopped, deadlocked) is
        hung: a control actor is lost (:class:`ComponentLost`), a unit actor is killed and its
        units are lost (their requests redone on the others)."""
        alive = [n for n in self.handles if n not in self.lost]
        refs = {self.handles[n].ping.remote(): n for n in self.units.one_per_actor(alive)}
        ready, late = self._wait_pings(refs)
        for ref in ready:
            name = refs[ref]
            try:
                with reraise_typed():
                    ray.get(ref)
            except ray.exceptions.RayActorError as e:
                if name in self.control:
                    raise ComponentLost(name, type(e).__name__) from None
                self._actor_lost(name, alive, type(e).__name__)
        for ref in late:
            self._hung(refs[ref], alive)

    def _wait_pings(self, refs: dict[Any, str]) -> tuple[list[Any], list[Any]]:
        """The pings answered and those still unanswered after ``hang_timeout_s``; meanwhile
        (after the first ``failure_poll_s``) :attr:`unanswered` names the late actors."""
        hang_s = max(self.exp.placement.hang_timeout_s, self.exp.placement.failure_poll_s)
        first_s = min(hang_s, self.exp.placement.failure_poll_s)
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=first_s)
        if late:
            self.unanswered = tuple(refs[r] for r in late)
            more, late = ray.wait(late, num_returns=len(late), timeout=hang_s - first_s)
            ready += more
            self.unanswered = ()
        return ready, late

    def _hung(self, name: str, alive: list[str]) -> None:
        why = (f"hung: no answer to a ping within {self.exp.placement.hang_timeout_s:g} s "
               "(placement.hang_timeout_s)")
        if name in self.control:
            raise ComponentLost(name, why)
        ray.kill(self.handles[name], no_restart=True)  # it must not wake up and send stale work
        self._actor_lost(name, alive, why)

    def _actor_lost(self, name: str, alive: list[str], why: str) -> None:
        """Every unit on ``name``'s actor is lost."""
        handle = self.handles[name]
        for unit in [n for n in alive if self.handles[n] == handle]:
            self.external_loss(unit, why)

    def external_loss(self, unit: str, why: str) -> None:
        """A unit whose actor died of an outside cause (a ``kill -9``, its node gone): handled
        and reported exactly as an injected loss — the router redoes its requests, and the
        fault log (console, ``summary.json`` ``faults``) says so, with ``cause: external``."""
        at_s = self.emu_now()
        self.log_external(unit, why, at_s)  # first: telling the router may find the collector lost
        self.unit_down(unit, why, at_s)

    def log_external(self, unit: str, why: str, at_s: float) -> None:
        """Record in the fault log that ``unit`` was lost at ``at_s`` of an outside cause."""
        self.lost[unit] = why
        self.player.log.append((at_s, f"{at_s:.3f} s: {unit} lost (cause: external, {why})"))
        self.player.log.sort(key=lambda entry: entry[0])

    def dead_components(self) -> list[str]:
        """Every component whose actor no longer answers (RayActorError), best effort: what a
        lost node took with it, for the report of a run that lost its control plane."""
        alive = [n for n in self.handles if n not in self.lost]
        refs = {self.handles[n].ping.remote(): n for n in self.units.one_per_actor(alive)}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=PING_TIMEOUT_S)
        dead: list[str] = []
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                handle = self.handles[refs[ref]]
                dead += [n for n in alive if self.handles[n] == handle]
            except Exception:  # noqa: BLE001 - a component failure is not a loss
                continue
        return dead

    def unit_down(self, name: str, why: str, at_s: float) -> None:
        """Record ``name`` as lost and tell the router, with the requests already ended."""
        self.lost[name] = why
        try:
            ended = self.ledger.ended_ids()
        except ray.exceptions.RayActorError as e:
            raise ComponentLost("collector", type(e).__name__) from None
        self.units.send("router", UnitDown(name, ended, at_s))


def _no_restart(unit: str) -> Any:
    raise RayEngineError(f"cannot restart {unit}: this run has no way to start actors")

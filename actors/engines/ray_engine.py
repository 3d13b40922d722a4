"""The ray engine: Ray async actors on wall-clock time with dilation — one per unit (or several
units of one kind per actor, ``[placement] units_per_actor``) and the control plane in one
(``[placement] one_control_actor``, the default; false: one per control component); messages travel through each actor's transport
(``transport.py``: one call per destination actor per loop tick, counted in ``messages``).

Every actor declares ``num_cpus=0`` and a custom resource named after the hardware it emulates
(``trainium2``, ``cs3``, ...; control-plane components use ``disagg_control``), so many actors fit
on a small machine and, on a cluster, units land on nodes that advertise their hardware.
``ray.init(address="local")`` starts an embedded local Ray (never joining a cluster that
something else started on this machine); ``RAY_ADDRESS`` or ``address`` joins
an existing cluster (``ray_start.py``: Ray and the actors started).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray

from disagg.actors.components.collector import Drained
from disagg.actors.engines.engine import Ending, Progress, RunResults, Sink, run_engine
from disagg.actors.engines.host import ComponentHost, RayPeer, RayStore, WallClock
from disagg.actors.engines.placement import CONTROL_RESOURCE, Placement, local_resources
from disagg.actors.engines.ray_drain import Drainer, flush_transports, gather_results
from disagg.actors.engines.ray_start import init_ray, node_ips, replanned_arrivals, start_actors
from disagg.actors.engines.roles import ArrivalsFacade
from disagg.actors.engines.signals import driver_signals_kept
from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.supervisor import (
    PING_TIMEOUT_S,
    ClusterGone,
    ComponentLost,
    RayEngineError,
    Supervisor,
)
from disagg.actors.engines.transport import message_counts
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ComponentFailed
from disagg.cluster.facts import arrivals_name, closed_loop, control_names

__all__ = ["CONTROL_RESOURCE", "GCS", "ClusterGone", "ComponentHost", "ComponentLost", "RayEngine",
           "RayEngineError", "RayPeer", "RayStore", "WallClock", "local_resources", "run_ray"]

GCS = "gcs"  # ``component_lost`` of a run whose Ray cluster lost its control store
GCS_CLOSE_S = 5.0  # wall seconds given to the clean-up once the GCS is gone


class RayEngine:
    """The ray engine behind the :class:`~disagg.actors.engines.engine.Engine` interface.

    ``serving`` builds ``disagg serve``'s components (a gateway in the load generator's place),
    through the same placement. Finished rows go to ``sink`` every poll (kept in memory without
    one); ``live_s`` > 0 (wall s) makes every component report its state to the collector."""

    def __init__(self, exp: Experiment, address: str | None = None, sink: Sink | None = None,
                 live_s: float = 0.0, poll_s: float = 0.5, serving: bool = False) -> None:
        self.exp, self.address, self.serving = exp, address, serving
        self.live_s, self.poll_s = live_s, live_s if live_s > 0 else poll_s
        self.kept = Drained()
        self.sink: Sink = sink or self.kept.extend
        self.handles: dict[str, Any] = {}
        self.lost: dict[str, str] = {}
        self.nodes: dict[str, str] = {}
        self.offsets: dict[str, Any] = {}
        self.t0 = 0.0
        self.placement: Placement | None = None
        self.lost_control = ""  # the control component lost while the run ended, if any
        self.cluster_gone = False  # the GCS stopped answering (ClusterGone)
        self._started_ray = False
        self._sup: Supervisor | None = None
        self._drain: Drainer | None = None

    @property
    def arrivals(self) -> str:
        """The name of the component that submits requests (load generator or gateway)."""
        return arrivals_name(self.serving)

    def start(self) -> None:
        """Start Ray (or join ``address``), place, connect and start every actor."""
        self._started_ray = init_ray(self.exp, self.address)
        self.placement = Placement(self.exp, ray.cluster_resources())
        self.handles, self.nodes, self.offsets, self.t0, start_unit = start_actors(
            self.exp, self.placement, self.live_s, self.serving)
        self._sup = Supervisor(self.exp, self.handles, self.t0, self.lost, start_unit)
        self._drain = Drainer(self.handles, self.nodes, self.sink, self.t0,
                              self.exp.experiment.dilation, self.lost)

    def emu_now(self) -> float:
        """The run's emu time now (driver clock)."""
        return (time.time() - self.t0) / self.exp.experiment.dilation

    def wait(self, stop: StopFlag | None = None, progress: Progress | None = None) -> Ending:
        """Supervise until the run ends, draining rows as it goes (see :class:`Ending`)."""
        assert self._sup is not None and self._drain is not None
        try:
            last = ArrivalsFacade(self.handles[self.arrivals]).last_arrival_s()
            deadline = self.t0 + (last + self.exp.experiment.drain_timeout_s) * \
                self.exp.experiment.dilation
            how = self._sup.wait(deadline, self.poll_s, progress, stop, self._drain)
        except ray.exceptions.RayActorError as e:
            self.lost[self.arrivals] = type(e).__name__
            self._count_the_dead(self.arrivals)
            return Ending("lost", component=self.arrivals)
        except ComponentLost as e:
            self.lost[e.name] = str(e)
            self._count_the_dead(e.name)
            return Ending("lost", component=e.name)
        except ClusterGone:
            self.cluster_gone = True  # the actors still answer the driver for a while
            return Ending("lost", component=GCS)
        except ComponentFailed as e:
            return Ending("failed", component=e.name, failure=e)
        if how == "stopped":
            return Ending("stopped", stop.reason if stop is not None else "")
        return Ending("done" if how == "done" else "deadline")

    @property
    def unanswered(self) -> tuple[str, ...]:
        """Actors whose ping is late right now (maybe hung), by component name."""
        return self._sup.unanswered if self._sup is not None else ()

    def _count_the_dead(self, first: str) -> None:
        """After losing control component ``first``: every other component lost with it (a
        raylet or node gone takes all its actors) is recorded as lost, so the results name
        them; its units are logged as external losses."""
        assert self._sup is not None
        for name in self._sup.dead_components():
            if name == first or name in self.lost:
                continue
            if name in control_names(self.serving):
                self.lost[name] = f"lost with the {first}"
            else:  # the router may be gone too: nothing to redo, only to report
                self._sup.log_external(name, f"lost with the {first}", self._sup.emu_now())

    def check(self) -> None:
        """Ping every actor: raises :class:`ComponentFailed` or :class:`ComponentLost`."""
        assert self._sup is not None
        self._sup.check_actors()

    def stop_arrivals(self) -> tuple[Any, ...]:
        """Arrivals stop; the requests sent but not reported (planned again from the seed when
        the load generator or the collector was lost on an open-loop workload)."""
        if self.arrivals not in self.lost:
            try:
                unsent = ArrivalsFacade(self.handles[self.arrivals]).stop_arrivals(PING_TIMEOUT_S)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                self.lost[self.arrivals] = "lost while stopping"
                self.lost_control = self.arrivals
                unsent = ()
        open_loop = not closed_loop(self.exp) and not self.serving
        if open_loop and ("loadgen" in self.lost or "collector" in self.lost):
            unsent = replanned_arrivals(self.exp, self.emu_now())
        return unsent

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> None:
        """See :meth:`Engine.drain`; the final one flushes every transport first (and, with the
        collector lost, writes a row for each request it held)."""
        assert self._drain is not None
        if self.lost_control and (unfinished is None or unfinished[0] == "cancelled"):
            unfinished = ("failed", "emulator_component_lost")
        if "collector" in self.lost:
            self._drain.without_collector(arrivals, unfinished)
            return
        if final:
            flush_transports(self.handles, self.lost)
        self._drain(final, unfinished, arrivals)  # one call: Ray orders no two calls of an actor

    def results(self, ending: Ending) -> RunResults:
        """The surviving components' results, where each ran, and what crossed actors."""
        assert self._sup is not None and self.placement is not None
        if self.lost_control and ending.kind in ("stopped", "done", "deadline"):
            ending = Ending("lost", component=self.lost_control)
        components, gone = gather_results(self.handles, self.lost)
        control = control_names(self.serving)
        for name in gone:  # a unit found lost only now is a loss like any other: logged
            if name not in control:
                self._sup.log_external(name, self.lost[name], self.emu_now())
        ips = {} if self.cluster_gone else node_ips()  # ray.nodes() asks the GCS
        return RunResults(
            "ray", self.emu_now(), components, self.kept.rows, self.kept.transfers,
            self.kept.series, sorted(n for n in self.lost if n not in control),
            self._sup.player.report(self.emu_now()), message_counts(components),
            self.placement.mode,
            {n: {"node_id": node, "node_ip": ips.get(node, "")} for n, node in self.nodes.items()},
            {node: {"offset_ms": o.offset_s * 1e3, "uncertainty_ms": o.uncertainty_s * 1e3}
             for node, o in self.offsets.items()},
            ending=ending)

    def close(self) -> None:
        """Kill the actors, free the placement, and shut Ray down if this engine started it
        (without a GCS those calls may wait for it: then given ``GCS_CLOSE_S`` at most)."""
        if self.cluster_gone:
            done = threading.Thread(target=self._close, daemon=True)
            done.start()
            done.join(GCS_CLOSE_S)
            return
        self._close()

    def _close(self) -> None:
        for h in set(self.handles.values()):
            ray.kill(h)
        if self.placement is not None:
            self.placement.release()
        if self._started_ray:
            with driver_signals_kept():
                ray.shutdown()
            self._started_ray = False

def run_ray(
    exp: Experiment, address: str | None = None, progress: Progress | None = None,
    poll_s: float = 0.5, live_s: float = 0.0, stop: StopFlag | None = None,
    sink: Sink | None = None,
) -> dict[str, Any]:
    """Run ``exp`` on Ray actors; returns the raw results (``RunResults.as_raw``, with
    ``messages``: what crossed actors, ``transport.message_counts``).

    ``progress`` gets the collector's snapshot (plus ``now_s``) every ``poll_s`` wall seconds; with
    ``live_s`` > 0 every component reports its state to the collector at most that often (wall s).
    ``stop``, once requested, ends the run: arrivals stop, unfinished requests are ``cancelled``.
    A lost control-plane actor ends the run too: unfinished requests ``failed`` with reason
    ``emulator_component_lost`` and ``component_lost`` naming it. A component that raised ends
    it as :class:`ComponentFailed`, raised once the rows reached so far are in ``sink``.
    """
    results = run_engine(RayEngine(exp, address, sink, live_s, poll_s), stop, progress)
    if results.failure is not None:
        raise results.failure
    return results.as_raw()

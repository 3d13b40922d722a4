"""One interface for the engines (like SimPy's ``BaseEnvironment`` and its real-time subclass):
the virtual engine, the ray engine and ``disagg serve`` start, wait, drain, return results and
close the same way, and :func:`run_engine` ends every run the same way.

How a run ends decides what its unfinished requests become, once, here:

* ``done``: every request ended; ``deadline``: the drain deadline passed (the collector ends the
  rest ``unfinished_at_drain_deadline``);
* ``stopped``: a stop was requested (Ctrl-C): arrivals stop, the rest are ``cancelled``;
* ``lost``: a control-plane component was lost: the rest are ``failed/emulator_component_lost``;
* ``failed``: a component raised (:class:`ComponentFailed`): the rest are
  ``failed/emulator_component_failed`` and the error is kept in :attr:`RunResults.failure`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from disagg.actors.components.collector import Drained
from disagg.actors.engines.stop import StopFlag, StoppedBeforeStart
from disagg.cluster.errors import ComponentFailed

Sink = Callable[[Drained], None]
Progress = Callable[[dict[str, Any]], None]
EndKind = Literal["done", "deadline", "stopped", "lost", "failed"]


@dataclass(frozen=True)
class Ending:
    """How a run ended: ``kind``; ``reason`` (a stop's reason), ``component`` (the lost or
    failed one) and ``failure`` (what it raised) where they apply."""

    kind: EndKind
    reason: str = ""
    component: str = ""
    failure: ComponentFailed | None = None

    def unfinished(self) -> tuple[str, str] | None:
        """(status, reason) the requests still open get in the final drain (None: the collector's
        own, ``unfinished_at_drain_deadline``)."""
        if self.kind == "stopped":
            return ("cancelled", self.reason)
        if self.kind == "lost":
            return ("failed", "emulator_component_lost")
        if self.kind == "failed":
            return ("failed", "emulator_component_failed")
        return None

    @property
    def arrivals_stop(self) -> bool:
        """True if arrivals must be stopped before the final drain (the run ended early)."""
        return self.kind in ("stopped", "lost", "failed")


@dataclass
class RunResults:
    """What an engine hands the results writer (``experiments/run.py``), emu seconds throughout.

    ``requests``, ``transfers`` and ``series`` are the rows kept in memory (empty when a sink took
    them as the run went); ``components`` each component's ``results()``; ``messages`` what
    crossed actors (ray engine); ``placement``/``clock`` where each component ran and each node's
    clock offset (ray engine)."""

    engine: str
    end_s: float
    components: list[dict[str, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    lost_units: list[str] = field(default_factory=list)
    faults: list[Any] = field(default_factory=list)
    messages: dict[str, Any] | None = None
    placement_mode: str | None = None
    placement: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None
    ending: Ending = field(default_factory=lambda: Ending("done"))

    @property
    def failure(self) -> ComponentFailed | None:
        """The component failure that ended the run, if one did."""
        return self.ending.failure

    def as_raw(self) -> dict[str, Any]:
        """The results as the writer's dict (``summary.json`` keys: ``unfinished``,
        ``component_lost``, ``component_failed`` only when they apply)."""
        raw: dict[str, Any] = {
            "engine": self.engine, "end_s": self.end_s, "components": self.components,
            "requests": self.requests, "transfers": self.transfers, "series": self.series,
            "lost_units": self.lost_units, "faults": self.faults}
        for key in ("messages", "placement_mode", "placement", "clock"):
            if getattr(self, key) is not None:
                raw[key] = getattr(self, key)
        unfinished = self.ending.unfinished()
        if unfinished is not None:
            raw["unfinished"] = {"status": unfinished[0], "reason": unfinished[1]}
        if self.ending.kind == "lost":
            raw["component_lost"] = self.ending.component
        if self.failure is not None:
            raw["component_failed"] = {"name": self.failure.name,
                                       "exc_type": self.failure.exc_type,
                                       "message": self.failure.message}
        return raw


class Engine(Protocol):
    """An engine hosting one run's components."""

    def start(self) -> None:
        """Build, place and start every component; emu time runs from here."""

    def wait(self, stop: StopFlag | None, progress: Progress | None) -> Ending:
        """Until the run ends (see :class:`Ending`), draining finished rows into the sink as it
        goes and handing ``progress`` the collector's snapshot (plus ``now_s``)."""
        ...

    def stop_arrivals(self) -> tuple[Any, ...]:
        """Submit nothing more; the requests submitted but not yet reported to the collector."""
        ...

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> None:
        """Move the finished rows and final timeseries bins into the sink (``final``: every row,
        open requests ended with ``unfinished``, ``arrivals`` counted in first)."""

    def results(self, ending: Ending) -> RunResults:
        """Every surviving component's results, for a run that ended as ``ending``."""
        ...

    def close(self) -> None:
        """Remove what :meth:`start` made (actors, loop, Ray if the engine started it)."""


def finish(engine: Engine, ending: Ending) -> RunResults:
    """End a run the one way every engine ends: stop arrivals if it ended early, the final drain
    (open requests get ``ending.unfinished()``), then the components' results."""
    unsent: tuple[Any, ...] = engine.stop_arrivals() if ending.arrivals_stop else ()
    engine.drain(True, ending.unfinished(), unsent)
    return engine.results(ending)


def run_engine(engine: Engine, stop: StopFlag | None = None,
               progress: Progress | None = None) -> RunResults:
    """Start ``engine``, wait for the run's end, finish it and close the engine.

    A component failure does not raise here: it ends the run and is in ``failure`` (so the
    results reached so far are written before the caller raises it). A stop requested while the
    engine started raises :class:`StoppedBeforeStart` once it is closed (nothing ran)."""
    try:
        engine.start()
        if stop is not None and stop.requested:
            raise StoppedBeforeStart(stop.reason)
        return finish(engine, engine.wait(stop, progress))
    finally:
        engine.close()


def raise_failure(results: RunResults) -> RunResults:
    """``results``, or the :class:`ComponentFailed` that ended their run."""
    if results.failure is not None:
        raise results.failure
    return results

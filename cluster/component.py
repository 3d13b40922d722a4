"""What every component stands on: a clock, peer handles, message dispatch, lag accounting.

Components are plain asyncio classes. The engine gives each a :class:`Clock` (virtual or wall
time with dilation) and :class:`Peer` handles; a peer's ``send`` is a message in both engines —
the caller never runs the callee's code inline — and the callee handles messages in arrival order
through one type -> handler table.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from disagg.cluster.sketch import QuantileSketch
from disagg.cluster.timegate import TIME_EPS_S, TimeGate
from disagg.cluster.wake import Wake, at_once

__all__ = ["TIME_EPS_S", "Clock", "Component", "Peer"]
SERIES_MARGIN_S = 1.0
"""Emu seconds a component keeps timeseries bins open behind its own frontier, for events whose
modeled time comes late (lag on the ray engine)."""
RECENT_LAGS = 1000
"""Lags each component keeps in full for the live view (the rest go into its sketch only)."""


class Clock(ABC):
    """Emu time for one component; ``loop_delay_s`` converts an emu deadline to a loop delay."""

    @abstractmethod
    def now(self) -> float:
        """Current emu time, seconds."""

    @abstractmethod
    def loop_delay_s(self, emu_s: float) -> float:
        """Seconds of the running event loop's clock until emu time ``emu_s`` (may be <= 0)."""

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the component runs on: the running one (a clock that owns its loop
        hands it over without asking: ``asyncio.get_running_loop`` asks the OS for the process
        id on every call, a system call of ≈ 0.5 µs here, ≈ 84k calls a Mooncake run)."""
        return asyncio.get_running_loop()

    def sleep_until(self, emu_s: float) -> Awaitable[None]:
        """Sleep until emu time ``emu_s`` (returns at once if it has passed). The awaitable is
        ``asyncio.sleep``'s own (one coroutine fewer per sleep; await it at once: the delay is
        computed on the call)."""
        delay = self.loop_delay_s(emu_s)
        return asyncio.sleep(delay) if delay > 0 else at_once(None)

    def wait_until(self, emu_s: float, event: asyncio.Event | Wake) -> Awaitable[bool]:
        """Sleep until ``emu_s`` or until ``event`` is set; True if the event woke us (False if
        the deadline came first, even when the event was set before this task resumed). For a
        :class:`Wake` (the units' waits, ~50k a run) the awaitable is the Wake's own wait: one
        coroutine fewer to create, enter and resume through (await it at once: the event is
        looked at on the call)."""
        if isinstance(event, Wake):
            if event._set:
                return at_once(True)
            delay = self.loop_delay_s(emu_s)
            return event.wait_for(delay) if delay > 0 else at_once(False)
        return self._wait_event(emu_s, event)

    async def _wait_event(self, emu_s: float, event: asyncio.Event) -> bool:
        if event.is_set():
            return True
        delay = self.loop_delay_s(emu_s)
        if delay <= 0:
            return False
        try:
            async with asyncio.timeout(delay):  # waits in this task: no inner task, fewer hops
                await event.wait()
        except TimeoutError:
            return False
        return True


class Peer(Protocol):
    """A handle to another component; ``send`` delivers a message asynchronously."""

    def send(self, message: Any) -> None: ...


@runtime_checkable
class RunLedger(Protocol):
    """What an engine asks of the component that keeps the request ledger (the collector):
    ``done`` is set once every submitted request has ended."""

    done: asyncio.Event

    def ended_ids(self) -> frozenset[int]:
        """Ids of the requests that have ended so far."""
        ...

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> Any:
        """The rows finished since the last drain; ``final``: every remaining row, requests that
        never ended getting ``unfinished`` (status, reason); ``arrivals``: requests sent but not
        yet reported, counted in first."""
        ...


@runtime_checkable
class ArrivalSource(Protocol):
    """What an engine asks of the component that submits requests (the load generator)."""

    def arrivals_end_s(self) -> float:
        """Emu time by which every arrival has happened (the drain deadline counts from it)."""
        ...

    def stop_arrivals(self) -> tuple[Any, ...]:
        """Submit nothing more (an interrupted run); returns the requests submitted but not yet
        reported to the ledger (the engine reports them, as ``Arrivals``, before the last drain)."""
        ...


def as_ledger(component: object) -> RunLedger:
    """``component`` as a :class:`RunLedger`, or TypeError naming what it lacks."""
    if not isinstance(component, RunLedger):
        raise TypeError(f"{type(component).__name__} does not keep a request ledger")
    return component


def as_arrivals(component: object) -> ArrivalSource:
    """``component`` as an :class:`ArrivalSource`, or TypeError naming what it lacks."""
    if not isinstance(component, ArrivalSource):
        raise TypeError(f"{type(component).__name__} submits no requests")
    return component


class Component:
    """Base for components: message dispatch, lag and late-decision accounting, a random stream.

    Subclasses fill ``self.handlers`` (message type -> method) and may override :meth:`run`
    (started once by the engine) and :meth:`results` (gathered once at the end).

    Lateness (``cluster/timegate.py``): the engine hands the component a :class:`TimeGate`
    (``gate``) that says when it may act on modeled ``t`` (its release time: ``t`` on the
    virtual engine, ``t`` + a conservative hold on the ray engine) and what becomes of an input
    that comes late. A message-driven component (``holds_messages``) has its messages held per
    edge by the gate; timer-driven ones (prefill, decode) wait with :meth:`hold_until`.
    """

    holds_messages = False
    """True for message-driven components: with a hold, messages wait in release-time order."""

    def __init__(self, name: str, clock: Clock, rng: np.random.Generator | None = None) -> None:
        self.name = name
        self.clock = clock
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.unit: Any = None  # a unit's UnitId (cluster/records.py); None for control components
        self.peers: dict[str, Peer] = {}
        self.handlers: dict[type, Callable[[Any], None]] = {}
        self._lags = QuantileSketch()  # every lag, emu s (bounded memory)
        self._recent_lags_s: deque[float] = deque(maxlen=RECENT_LAGS)
        self._zero_lags = 0  # lags of 0 after those in the two above, not yet added to them
        self.acts = 0  # actions whose lag was recorded
        self.decisions = 0  # decisions taken (:meth:`decide_at`), the late ones' denominator
        self.late_decisions = 0
        self.last_decision_s = 0.0
        self._last_by_stream: dict[str, float] = {}  # other decision streams (see decide_at)
        self.gate = TimeGate()  # no hold, corrections on; the engine hands its own

    def set_gate(self, gate: TimeGate) -> None:
        """Use ``gate`` (the engine's, before ``run``) for release times and late inputs."""
        self.gate = gate
        if self.holds_messages:
            gate.hold_messages(self.clock, self._handle)

    @property
    def hold_s(self) -> float:
        """Emu s between modeled ``t`` and acting on it (the gate's; 0 without a hold)."""
        return self.gate.hold_s

    def connect(self, peers: dict[str, Peer]) -> None:
        """Give the component its peers by name (called once by the engine before ``run``)."""
        self.peers = dict(peers)

    def deliver(self, message: Any) -> None:
        """Handle one message (the engine calls this in arrival order); the gate may hold it
        until its release time (a message-driven component on the ray engine)."""
        # runs once per message: the gate is asked only when it holds, and :meth:`_handle` is
        # inlined (two Python calls fewer per message)
        gate = self.gate
        if gate.holding and not gate.admit_message(message):
            return
        handler = self.handlers.get(type(message))
        if handler is None:
            raise TypeError(f"{self.name} has no handler for {type(message).__name__}")
        handler(message)

    def gate_release(self, modeled_s: float) -> float:
        """Emu time at which this component acts on modeled ``modeled_s`` (its gate's)."""
        return self.gate.release_s(modeled_s)

    def hold_until(self, modeled_s: float, wake: Wake) -> Awaitable[bool]:
        """Timer-driven components: wait until the gate's release time for modeled
        ``modeled_s``; True if ``wake`` was set first (an input came: decide again). Await it
        at once (``wake`` is cleared on the call)."""
        wake.clear()
        return self.clock.wait_until(self.gate.release_s(modeled_s), wake)

    def _handle(self, message: Any) -> None:
        """Hand one message to the handler for its type."""
        handler = self.handlers.get(type(message))
        if handler is None:
            raise TypeError(f"{self.name} has no handler for {type(message).__name__}")
        handler(message)

    async def run(self) -> None:
        """The component's own activity; the default has none."""

    def act_at(self, modeled_s: float, hold_s: float | None = None) -> None:
        """Record lag (emu s) for an action whose modeled time is ``modeled_s``, against the
        intended time ``modeled_s + hold_s`` (``hold_s``: the component's hold by default); a
        lag below 0 counts as 0."""
        lag_s = self.clock.now() - modeled_s - (self.gate.hold_s if hold_s is None else hold_s)
        self.acts += 1
        if lag_s > 0.0:
            if self._zero_lags:
                self._add_zero_lags()
            self._lags.add(lag_s)
            self._recent_lags_s.append(lag_s)
        else:  # counted, added when read: ~110k lags a run, almost all 0 on the virtual engine
            self._zero_lags += 1

    def _add_zero_lags(self) -> None:
        """Add the counted lags of 0 to the sketch and the recent lags, as one at a time would."""
        n, self._zero_lags = self._zero_lags, 0
        self._lags.add_zeros(n)
        self._recent_lags_s.extend(itertools.repeat(0.0, min(n, RECENT_LAGS)))

    @property
    def lags(self) -> QuantileSketch:
        """Every lag recorded (:meth:`act_at`), emu s, in a bounded-memory sketch."""
        if self._zero_lags:
            self._add_zero_lags()
        return self._lags

    @property
    def recent_lags_s(self) -> deque[float]:
        """The last :data:`RECENT_LAGS` lags recorded, emu s (for the live view)."""
        if self._zero_lags:
            self._add_zero_lags()
        return self._recent_lags_s

    def note_input(self, modeled_s: float, stream: str = "") -> bool:
        """An input (a message's modeled arrival, or a decision) at modeled ``modeled_s``:
        late per the gate's rule if before a decision this component already took on
        ``stream`` (a router decides on arrivals and on KVs, released by different holds).
        Counts it; True if late."""
        last = self.last_decision_s if not stream else self._last_by_stream.get(stream, 0.0)
        late = self.gate.late_decision(modeled_s, last)
        if late:
            self.late_decisions += 1
        return late

    def decide_at(self, modeled_s: float, stream: str = "") -> None:
        """Record a decision at ``modeled_s`` on ``stream`` (late per :meth:`note_input`)."""
        # note_input, inlined: once per decision (~50k a run)
        last = self._last_by_stream.get(stream, 0.0) if stream else self.last_decision_s
        if self.gate.late_decision(modeled_s, last):
            self.late_decisions += 1
        self.decisions += 1
        if stream:
            self._last_by_stream[stream] = max(last, modeled_s)
        elif modeled_s > last:  # max(), without the call
            self.last_decision_s = modeled_s
        self.act_at(modeled_s)

    def results(self) -> dict[str, Any]:
        """What the component hands to the results at the end of a run: its lag sketch's state
        and its decisions, late ones among them."""
        unit = None if self.unit is None else {"kind": self.unit.kind, "index": self.unit.index}
        return {"name": self.name, "unit": unit, "lags": self.lags.state(),
                "decisions": self.decisions, "late_decisions": self.late_decisions,
                **self.gate.counts()}

    def drain_series(self) -> list[dict[str, Any]]:
        """Per-bin history that has become final (``timeseries.parquet`` rows, as plain data),
        handed out as the run goes and forgotten here; none by default."""
        return []

    def _identity(self) -> dict[str, Any]:
        """A unit's kind and index, for views (empty for control components)."""
        return {} if self.unit is None else {"kind": self.unit.kind, "index": self.unit.index}

    def snapshot(self) -> dict[str, Any]:
        """A small live view of the component's state (for the live view)."""
        return {"name": self.name}

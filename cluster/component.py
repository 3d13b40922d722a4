"""What every component stands on: a clock, peer handles, message dispatch, lag accounting.

Components are plain asyncio classes. The engine gives each a :class:`Clock` (virtual or wall
time with dilation) and :class:`Peer` handles; a peer's ``send`` is a message in both engines —
the caller never runs the callee's code inline — and the callee handles messages in arrival order
through one type -> handler table.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Clock(ABC):
    """Emu time for one component; ``loop_delay_s`` converts an emu deadline to a loop delay."""

    @abstractmethod
    def now(self) -> float:
        """Current emu time, seconds."""

    @abstractmethod
    def loop_delay_s(self, emu_s: float) -> float:
        """Seconds of the running event loop's clock until emu time ``emu_s`` (may be <= 0)."""

    async def sleep_until(self, emu_s: float) -> None:
        """Sleep until emu time ``emu_s`` (returns at once if it has passed)."""
        delay = self.loop_delay_s(emu_s)
        if delay > 0:
            await asyncio.sleep(delay)

    async def wait_until(self, emu_s: float, event: asyncio.Event) -> bool:
        """Sleep until ``emu_s`` or until ``event`` is set; True if the event woke us."""
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


@runtime_checkable
class ArrivalSource(Protocol):
    """What an engine asks of the component that submits requests (the load generator)."""

    def arrivals_end_s(self) -> float:
        """Emu time by which every arrival has happened (the drain deadline counts from it)."""
        ...

    def stop_arrivals(self) -> None:
        """Submit nothing more (an interrupted run); results hold only what was submitted."""
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
    """

    def __init__(self, name: str, clock: Clock, rng: np.random.Generator | None = None) -> None:
        self.name = name
        self.clock = clock
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.peers: dict[str, Peer] = {}
        self.handlers: dict[type, Callable[[Any], None]] = {}
        self.lags_s: list[float] = []
        self.late_decisions = 0
        self.last_decision_s = 0.0

    def connect(self, peers: dict[str, Peer]) -> None:
        """Give the component its peers by name (called once by the engine before ``run``)."""
        self.peers = dict(peers)

    def deliver(self, message: Any) -> None:
        """Handle one message (the engine calls this in arrival order)."""
        handler = self.handlers.get(type(message))
        if handler is None:
            raise TypeError(f"{self.name} has no handler for {type(message).__name__}")
        handler(message)

    async def run(self) -> None:
        """The component's own activity; the default has none."""

    def act_at(self, modeled_s: float) -> None:
        """Record lag for an action whose modeled time is ``modeled_s``."""
        self.lags_s.append(max(0.0, self.clock.now() - modeled_s))

    def decide_at(self, modeled_s: float) -> None:
        """Record a decision at ``modeled_s``; one earlier than the last decision was late."""
        if modeled_s < self.last_decision_s - 1e-9:
            self.late_decisions += 1
        self.last_decision_s = max(self.last_decision_s, modeled_s)
        self.act_at(modeled_s)

    def results(self) -> dict[str, Any]:
        """What the component hands to the results at the end of a run."""
        return {"name": self.name, "lags_s": self.lags_s, "late_decisions": self.late_decisions}

    def snapshot(self) -> dict[str, Any]:
        """A small live view of the component's state (for the live view)."""
        return {"name": self.name}

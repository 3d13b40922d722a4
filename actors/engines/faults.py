"""How both engines execute one fault schedule (``cluster/faults.py``).

:class:`FaultPlayer` walks the schedule's timed actions in order and hands each to the engine
through the :class:`FaultHost` interface — kill or restart a unit, send a component a message —
so what a fault does is written once; each engine only says *how* a unit dies (the virtual engine
cuts it off its loop, the ray engine ``ray.kill``s its actor). KV faults are not timed: they act
where a payload enters the object store (:class:`FaultyStore`), the same in both engines.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from disagg.actors.components.store import ObjectStore
from disagg.cluster.faults import FaultAction, FaultSchedule
from disagg.cluster.messages import LinkScaled, SpeedChanged
from disagg.fabric.payload import KvMarker, tamper


class FaultHost(Protocol):
    """What an engine offers the fault player (all times emu seconds)."""

    def kill_unit(self, unit: str, at_s: float) -> None:
        """The unit's machine goes away: it stops, and the router learns it is down."""

    def restart_unit(self, unit: str, at_s: float) -> None:
        """A fresh unit replaces a lost one, and the router learns it is up."""

    def send(self, component: str, message: Any) -> None:
        """Deliver ``message`` to the component called ``component``."""


TIMED_BY_RECEIVER = ("speed", "link")  # actions whose message carries its own emu time


class FaultPlayer:
    """Plays a schedule's timed actions on a :class:`FaultHost`; ``log`` records what happened
    as ``(emu s, description)`` for the results and the console summary.

    A speed or link change is a message stamped with its emu time that the receiver applies at
    that time, so an engine whose clock runs on wall time may hand it over up to ``lead_s``
    early (the ray engine does, so that polling and message latency do not delay it); a kill or
    restart happens when it is due."""

    def __init__(self, schedule: FaultSchedule, host: FaultHost) -> None:
        self.pending = list(schedule.actions)
        self.host = host
        self.log: list[tuple[float, str]] = []

    def next_at_s(self, lead_s: float = 0.0) -> float | None:
        """Emu time at which the next action is to be played (with ``lead_s`` of lead for
        receiver-timed ones), or None when all have been played."""
        return min((self._play_at(a, lead_s) for a in self.pending), default=None)

    def report(self, end_s: float) -> list[tuple[float, str]]:
        """The log, then every action the run ended before (emu s ``end_s``) marked as such."""
        missed = [(a.at_s, f"{a.describe()} (not reached: the run ended at {end_s:.3f} s)")
                  for a in self.pending]
        return [*self.log, *missed]

    @staticmethod
    def _play_at(action: FaultAction, lead_s: float) -> float:
        return action.at_s - (lead_s if action.action in TIMED_BY_RECEIVER else 0.0)

    def play_due(self, now_s: float, lead_s: float = 0.0) -> None:
        """Execute every action to be played by ``now_s`` (receiver-timed ones ``lead_s``
        early), in schedule order."""
        due = [a for a in self.pending if self._play_at(a, lead_s) <= now_s]
        self.pending = [a for a in self.pending if a not in due]
        for action in due:
            self._play(action)

    def _play(self, action: FaultAction) -> None:
        if action.action == "kill":
            self.host.kill_unit(action.target, action.at_s)
        elif action.action == "restart":
            self.host.restart_unit(action.target, action.at_s)
        elif action.action == "speed":
            self.host.send(action.target, SpeedChanged(action.factor, action.at_s))
        else:
            self.host.send("fabric", LinkScaled(action.target, action.factor, action.at_s))
        self.log.append((action.at_s, action.describe()))
        self.log.sort(key=lambda entry: entry[0])  # in emu-time order even if played early


def payload_request_id(payload: Any) -> int | None:
    """The request id a KV payload (an Arrow record batch or a marker) carries, if any."""
    if isinstance(payload, KvMarker):
        return payload.request_id
    if isinstance(payload, pa.RecordBatch) and payload.schema.metadata:
        raw = payload.schema.metadata.get(b"request_id")
        return None if raw is None else int(raw)
    return None


class FaultyStore:
    """An object store that loses (reference None) or corrupts (one byte flipped) the KV
    payloads of the schedule's ``kv_drop`` / ``kv_corrupt`` requests as they are put."""

    def __init__(self, inner: ObjectStore, schedule: FaultSchedule) -> None:
        self.inner = inner
        self.holds_bytes = inner.holds_bytes
        self.drop = schedule.kv_drop
        self.corrupt = schedule.kv_corrupt

    def put(self, value: Any) -> Any:
        rid = payload_request_id(value)
        if rid is not None and rid in self.drop:
            return None
        if rid is not None and rid in self.corrupt:
            value = tamper(value)
        return self.inner.put(value)

    def get(self, ref: Any) -> Any:
        return self.inner.get(ref)  # the payload, or an awaitable of it (see store.py)


def with_kv_faults(store: ObjectStore, schedule: FaultSchedule) -> ObjectStore:
    """``store`` wrapped in a :class:`FaultyStore` if the schedule has KV faults."""
    if schedule.kv_drop or schedule.kv_corrupt:
        return FaultyStore(store, schedule)
    return store

"""When a component may act on an input, and what becomes of an input that comes late.

Components model time; an engine delivers their messages. On the virtual engine every message
arrives at its modeled time, so a component acts on an event at modeled ``t`` at ``t`` and no
input is ever late. On the ray engine a message arrives 1-100 ms (wall) after its modeled time,
so each component is handed a :class:`TimeGate` with a conservative hold: it acts on an event at
modeled ``t`` only at its release time ``t + hold`` (emu s), so that inputs with earlier modeled
times that lag brought late still arrive first. An input that comes later still — after the
component committed past its modeled arrival — is a *late input*, and the gate decides whether
it is corrected (and to which modeled time) or counted as a late decision. This module is the one
place those rules live: a unit asks the gate, it never decides lateness itself.

Holds come per edge from one table, :data:`HOLD_MULTIPLIERS` (sender kind -> receiver kind ->
multiples of ``H = [experiment] hold_wall_s / dilation``); see docs/cluster.md for why each.
The corrections (each counted on the gate, reported in the component's results):

- ``late_joins``: a decode unit's late KV joins at a past iteration boundary (see
  :meth:`TimeGate.join_index`; only one the batch had room at — the capacity rule);
- ``reformed_batches``: a prefill unit undoes the start of its running batch for a request that
  came late (:meth:`TimeGate.may_reform`);
- ``backdated``: the fabric starts a transfer that came late at its modeled time
  (:meth:`TimeGate.may_backdate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.hold import HeldMessages, LoopClock
from disagg.cluster.messages import (
    KvDelivered,
    KvReady,
    LoadReport,
    PrefillAssigned,
    RequestArrived,
    TransferRequested,
)

TIME_EPS_S = 1e-9
"""The one tolerance for comparing emu times, seconds: events closer than this are simultaneous
(float seconds accumulate rounding). Every time comparison in the components uses it."""

HOLD_MULTIPLIERS: dict[str, dict[str, int]] = {
    # a request's arrival: the router routes it H after its modeled arrival
    "loadgen": {"router": 1},
    # the router sends PrefillAssigned at t + H: one H of slack at the unit; TransferRequested
    # for a KvReady it released at e + 3H: one H of slack at the fabric
    "router": {"prefill": 2, "colocated": 2, "fabric": 4},
    # KvReady (sent at max(batch end, batch start + 2H)) and load reports (at t + 2H): on time
    # at the router unless lag exceeds H (+ the batch's duration, for a KvReady)
    "prefill": {"router": 3},
    "colocated": {"router": 3},
    # decode reports leave at t + 5H: released on arrival. The router's decode placement (at
    # e + 3H) can never see reports younger than 2H (router -> fabric -> decode -> router is a
    # cycle: no finite hold makes every edge of it on time); 3 keeps them from its future
    "decode": {"router": 3},
    # KvDelivered leaves the fabric at its modeled time + 4H: one H of slack at the unit
    "fabric": {"decode": 5},
}
"""Sender kind -> receiver kind -> hold, in multiples of ``H`` (emu s). A timer-driven receiver
(prefill, decode, colocated, fabric) passes modeled ``t`` at ``t`` + its largest incoming hold."""

_SENDER_OF: dict[type, str] = {
    RequestArrived: "loadgen", PrefillAssigned: "router", TransferRequested: "router",
    KvReady: "prefill", KvDelivered: "fabric",
}
"""Message type -> sender kind (a LoadReport names its kind; other messages come from the engine
or the collector and are held as the receiver's shortest edge)."""


class CausalityError(RuntimeError):
    """An input came late on an engine that delivers every message at its modeled time."""


def sender_kind(message: Any) -> str | None:
    """The kind of component that sent ``message`` (None: the engine or the collector)."""
    if isinstance(message, LoadReport):
        return message.kind
    return _SENDER_OF.get(type(message))


class TimeGate:
    """One component's release times and late-input rules.

    ``receiver``: the component's kind (``router``, ``prefill``, ...); ``hold_unit_s``: ``H``,
    emu s (0: no hold); ``corrections``: late inputs are corrected (ray engine); False: a late
    input breaks causality and raises :class:`CausalityError` (virtual engine).
    """

    def __init__(self, receiver: str = "", hold_unit_s: float = 0.0,
                 corrections: bool = True) -> None:
        self.receiver = receiver
        self.hold_unit_s = hold_unit_s
        self.corrections = corrections
        self._edges = {s: m[receiver] for s, m in HOLD_MULTIPLIERS.items() if receiver in m}
        self.hold_s = max(self._edges.values(), default=0) * hold_unit_s
        """Emu s between modeled ``t`` and acting at it, for a timer-driven component."""
        self._min_hold_s = min(self._edges.values(), default=0) * hold_unit_s
        self.late_inputs = 0  # inputs that came after the component committed past them
        self.late_joins = 0
        self.reformed_batches = 0
        self.backdated = 0
        self._held: HeldMessages | None = None
        self.holding = False
        """True once messages are held (:meth:`hold_messages` with a hold): only then may
        :meth:`admit_message` hold one back (False: every message is admitted at once)."""

    @classmethod
    def for_virtual(cls, receiver: str) -> TimeGate:
        """The virtual engine's gate: acts at ``t``, and a late input raises."""
        return cls(receiver, 0.0, corrections=False)

    @classmethod
    def for_ray(cls, receiver: str, hold_wall_s: float, dilation: float) -> TimeGate:
        """The ray engine's gate: the table's holds in units of ``hold_wall_s / dilation``."""
        return cls(receiver, hold_wall_s / dilation, corrections=True)

    # -- when to act ----------------------------------------------------------------------
    def edge_hold_s(self, sender: str | None) -> float:
        """Emu s a message from ``sender`` waits past its modeled time (None: the shortest)."""
        if sender is None or sender not in self._edges:
            return self._min_hold_s
        return self._edges[sender] * self.hold_unit_s

    def release_s(self, modeled_s: float) -> float:
        """Emu time at which a timer-driven component acts on modeled ``modeled_s``."""
        return modeled_s + self.hold_s

    def hold_messages(self, clock: LoopClock, handle: Callable[[Any], None]) -> None:
        """Message-driven component: hold messages per edge and hand them to ``handle``."""
        self._held = HeldMessages(clock, handle)
        self.holding = self.hold_unit_s > 0.0

    def admit_message(self, message: Any) -> bool:
        """True if ``message`` may be handled now; else it is held until its release time."""
        if self._held is None or self.hold_unit_s <= 0.0:
            return True
        sent_s = getattr(message, "sent_s", None)
        if sent_s is None:
            return True
        self._held.push(float(sent_s) + self.edge_hold_s(sender_kind(message)), message)
        return False

    # -- late inputs ----------------------------------------------------------------------
    def is_late(self, modeled_s: float, committed_s: float) -> bool:
        """An input at modeled ``modeled_s`` reaching a component committed at ``committed_s``:
        True if it came late (counted); raises on a gate without corrections."""
        if not modeled_s < committed_s - TIME_EPS_S:
            return False
        if not self.corrections:
            raise CausalityError(f"{self.receiver}: input at {modeled_s:.9f} s reached it after "
                                 f"it committed to {committed_s:.9f} s")
        self.late_inputs += 1
        return True

    def late_decision(self, modeled_s: float, last_decision_s: float) -> bool:
        """The late-decision rule: a decision (or an input) at ``modeled_s`` earlier than a
        decision the component already took at ``last_decision_s`` (same stream) came late."""
        return modeled_s < last_decision_s - TIME_EPS_S

    def join_index(self, arrival_s: float, boundaries: Sequence[float] | NDArray[np.float64],
                   fits: Callable[[int], bool]) -> int | None:
        """A late input joins a unit's batch at the earliest remembered past boundary at or
        after its modeled arrival at which ``fits(i)`` (the batch had room and its KV fitted
        then); None: at the current boundary (no such past boundary, or no corrections)."""
        if not self.corrections:
            return None
        i = _first_at_or_after(boundaries, arrival_s)
        while i < len(boundaries):
            if fits(i):
                self.late_joins += 1
                return i
            i += 1
        return None

    def may_reform(self, queued_s: float, batch_start_s: float, revisable: bool) -> bool:
        """A prefill request queued at ``queued_s`` before the running batch's start: True if
        the batch is re-formed with it (the batch can still be undone)."""
        if not (self.corrections and revisable and queued_s < batch_start_s - TIME_EPS_S):
            return False
        self.reformed_batches += 1
        return True

    def may_backdate(self, late_s: float, single_chunk: bool) -> bool:
        """A transfer whose start is ``late_s`` past its modeled start: True if it starts at its
        modeled time anyway (one whole-KV chunk, not yet sent)."""
        if not (late_s > TIME_EPS_S and single_chunk):
            return False
        if not self.corrections:
            raise CausalityError(f"{self.receiver}: a transfer came {late_s:.9f} s late")
        self.backdated += 1
        return True

    def counts(self) -> dict[str, int]:
        """The corrections made, for the component's results."""
        return {"late_inputs": self.late_inputs, "late_joins": self.late_joins,
                "reformed_batches": self.reformed_batches, "backdated": self.backdated}


def _first_at_or_after(sorted_s: Sequence[float] | NDArray[np.float64], t: float) -> int:
    """Index of the first element >= ``t`` (len if none)."""
    lo, hi = 0, len(sorted_s)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_s[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo



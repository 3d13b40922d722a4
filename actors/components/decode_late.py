"""Late joins on a decode unit: where a KV that reached the unit after it committed past the KV's
modeled arrival (lag, ray engine) joins, and the tokens it is credited.

The rule (whether, and at which boundary) is the time gate's (``TimeGate.join_index``); this
module keeps what the rule needs — the latest iteration boundaries with the batch that ran from
each (running requests, KV in use) — and the decode arithmetic of the credited tokens.

The capacity rule: a late KV joins at the earliest remembered boundary at or after its modeled
arrival at which the admission policy would have admitted it (the batch had room and its KV
fitted), never earlier; a request that waited for room was not late, it queued, and is never
back-dated (the unit only asks for requests marked late on arrival).
"""

from __future__ import annotations

import numpy as np

from disagg.actors.components.recent_boundaries import RecentBoundaries
from disagg.cluster.timegate import TimeGate
from disagg.policies.base import DecodeAdmissionPolicy, DecodeState, PendingDecode

RECENT_BOUNDARIES = 4096  # iteration boundaries remembered for late joins


class BoundaryLoad:
    """The last iteration boundaries (emu s) with, for each, the requests running from it and
    the KV bytes they held."""

    def __init__(self, limit: int = RECENT_BOUNDARIES) -> None:
        self._bounds = RecentBoundaries(limit)
        self._running = RecentBoundaries(limit)
        self._kv = RecentBoundaries(limit)

    def extend(self, bounds: np.ndarray, running: np.ndarray, kv_bytes: np.ndarray) -> None:
        """Remember ``bounds`` and the batch (requests, KV bytes) that ran from each."""
        self._bounds.extend(bounds)
        self._running.extend(running)
        self._kv.extend(kv_bytes)

    def bounds(self) -> np.ndarray:
        """The remembered boundaries, oldest first."""
        return self._bounds.view()

    def joined(self, at_s: float, kv_bytes: float) -> None:
        """Requests holding ``kv_bytes`` joined at ``at_s``: count them from the last remembered
        boundary if it is ``at_s`` (a boundary passed without a plan is not remembered)."""
        b = self._bounds.view()
        if len(b) and abs(b[-1] - at_s) <= 1e-9:
            self._running.view()[-1] += 1
            self._kv.view()[-1] += kv_bytes

    def add(self, first: int, last: int, kv_bytes: float) -> None:
        """A late joiner ran from boundary ``first`` up to (not including) ``last``."""
        self._running.view()[first:last] += 1
        self._kv.view()[first:last] += kv_bytes

    def state(self, i: int, kv_capacity_bytes: float) -> DecodeState:
        """The batch that ran from boundary ``i``, as the admission policy sees a batch."""
        return DecodeState(float(self._bounds.view()[i]), int(self._running.view()[i]),
                           float(self._kv.view()[i]), kv_capacity_bytes)


def late_join_index(gate: TimeGate, load: BoundaryLoad, policy: DecodeAdmissionPolicy,
                    pending: PendingDecode, kv_capacity_bytes: float) -> int | None:
    """Boundary index at which a late KV joins (the gate's rule, with the admission policy as
    the judge of room at each past boundary); None: at the current boundary."""
    rid = pending.request.request_id

    def fits(i: int) -> bool:
        return rid in policy.admit((pending,), load.state(i, kv_capacity_bytes))

    return gate.join_index(pending.ready_s, load.bounds(), fits)

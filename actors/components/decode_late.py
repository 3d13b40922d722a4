"""Late joins on a decode unit: where a KV that reached the unit after it committed past the KV's
modeled arrival (lag, ray engine) joins, and the tokens it is credited.

The rule (whether, and at which boundary) is the time gate's (``TimeGate.join_index``); this
module keeps what the rule needs — the latest iteration boundaries with the batch that ran from
each (running requests, KV in use) — and the decode arithmetic of the credited tokens.

The capacity rule: a late KV joins at the earliest remembered boundary at or after its modeled
arrival at which the admission policy would have admitted it (the batch had room and its KV
fitted), never earlier; a request that waited for room was not late, it queued, and is never
back-dated (the unit only asks for requests marked late on arrival). With paged KV a late joiner
also holds the blocks of the tokens it is credited: it joins only where those fit the unit *now*
(beside the requests admitted with it), so however late a KV comes, the unit never holds more
KV than its capacity (``tests/test_decode_late_join.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.recent_boundaries import RecentBoundaries
from disagg.actors.components.speed import SpeedSchedule
from disagg.actors.components.token_feed import TokenFeed
from disagg.cluster.hardware.perf import decode_step_times
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import Request
from disagg.cluster.paged_kv import PagedKv
from disagg.cluster.timegate import TIME_EPS_S, TimeGate
from disagg.policies.base import DecodeAdmissionPolicy, DecodeState, PendingDecode

RECENT_BOUNDARIES = 4096  # iteration boundaries remembered for late joins


@dataclass(slots=True)  # slots: its fields are read and written per request per step
class Running:
    """A request in a decode unit's running batch."""

    request: Request
    left: int  # decode tokens still to generate
    context: int  # tokens in the KV cache now
    kv_bytes: float


class BoundaryLoad:
    """The last iteration boundaries (emu s) with, for each, the requests running from it and
    the KV bytes they held."""

    def __init__(self, limit: int = RECENT_BOUNDARIES) -> None:
        self._recent = RecentBoundaries(limit, rows=3)  # boundaries, requests, KV bytes

    def extend(self, bounds: np.ndarray, running: tuple[int, int],
               kv_bytes: tuple[float, float]) -> None:
        """Remember ``bounds`` and the batch that ran from each: ``running`` requests and
        ``kv_bytes`` held, as (from every boundary but the last, from the last)."""
        self._recent.extend(bounds, running, kv_bytes)

    def bounds(self) -> np.ndarray:
        """The remembered boundaries, oldest first."""
        return self._recent.view()

    def joined(self, at_s: float, kv_bytes: float) -> None:
        """Requests holding ``kv_bytes`` joined at ``at_s``: count them from the last remembered
        boundary if it is ``at_s`` (a boundary passed without a plan is not remembered)."""
        last = self._recent.last()
        if last is not None and abs(last - at_s) <= 1e-9:
            self._recent.add_to_last(1, 1)
            self._recent.add_to_last(2, kv_bytes)

    def add(self, first: int, last: int, kv_bytes: float) -> None:
        """A late joiner ran from boundary ``first`` up to (not including) ``last``."""
        self._recent.view(1)[first:last] += 1
        self._recent.view(2)[first:last] += kv_bytes

    def state(self, i: int, kv_capacity_bytes: float) -> DecodeState:
        """The batch that ran from boundary ``i``, as the admission policy sees a batch."""
        return DecodeState(float(self._recent.view()[i]), int(self._recent.view(1)[i]),
                           float(self._recent.view(2)[i]), kv_capacity_bytes)


class LateJoins:
    """The decode unit's side of late joins: where a late KV joins (asking the gate) and the
    tokens it is credited. Mixed into :class:`~disagg.actors.components.decode.DecodeUnit`."""

    gate: TimeGate
    policy: DecodeAdmissionPolicy
    model: ModelSpec
    hw: HardwareProfile
    chips: int
    kv_capacity_bytes: float
    kv_used_bytes: float
    t: float
    running: dict[int, Running]
    _context: int
    _load_hist: BoundaryLoad
    paged: PagedKv | None
    speed: SpeedSchedule
    token_feed: TokenFeed | None
    tokens_out: int
    peers: dict[str, Any]
    name: str

    # the unit's (annotations only, so no stub overrides them in the MRO)
    _grow: Callable[[Running], None]  # PagedDecode's
    _release: Callable[[Running], None]  # PagedDecode's
    _end: Callable[[Request, str, str, float], None]  # DecodeReports'

    def _late_join_at(self, pending: PendingDecode, rec: RequestDraft, run: Running,
                      reserve_bytes: float) -> int | None:
        """Past boundary index at which an admitted request joins: only a request whose KV
        came late (marked on arrival), only where the gate says (the admission policy judging
        the room the batch had then), and only where the KV of the tokens it is credited from
        there fits the unit now beside ``reserve_bytes`` (the KV of the requests admitted with it
        that join after it); None: now."""
        if not (rec.late and pending.ready_s < self.t - TIME_EPS_S):
            return None
        rid, load = pending.request.request_id, self._load_hist

        def fits(i: int) -> bool:
            return (rid in self.policy.admit((pending,), load.state(i, self.kv_capacity_bytes))
                    and self._credit_fits(run, i, reserve_bytes))

        return self.gate.join_index(pending.ready_s, load.bounds(), fits)

    def _credit_fits(self, run: Running, at: int, reserve_bytes: float) -> bool:
        """Whether the unit holds, now, the KV of a late joiner at boundary ``at`` with the
        tokens it is credited (paged KV grows with them; a reservation holds them already) plus
        ``reserve_bytes``: the unit never holds more KV than its capacity, however late the KV."""
        if self.paged is None:
            return True
        _, done = self._credited(run, at)
        grown = self.paged.bytes_for(run.context + done) - run.kv_bytes
        return self.kv_used_bytes + grown + reserve_bytes <= self.paged.capacity_bytes * (1 + 1e-9)

    def _credited(self, run: Running, at: int) -> tuple[np.ndarray, int]:
        """The token times a late joiner at boundary ``at`` is credited, and how many count
        (at most the tokens it has left)."""
        bounds = self._load_hist.bounds()
        steps = len(bounds) - 1 - at
        tokens = self._joined_tokens(run, float(bounds[at]), steps) if steps > 0 else np.empty(0)
        return tokens, min(len(tokens), run.left)

    def _credit_late(self, run: Running, rec: RequestDraft, at: int) -> None:
        """A late KV joined at past boundary ``at`` (the gate's choice): it is credited the
        tokens it would have had since, at the step times of the batch it joins (one more than
        the batch that ran; the others' past steps are not recomputed — exact when steps do not
        depend on the batch, as with a flat concurrency curve)."""
        bounds = self._load_hist.bounds()
        start = float(bounds[at])
        tokens, done = self._credited(run, at)
        if done <= 0:
            self._load_hist.add(at, len(bounds), run.kv_bytes)
            return
        rid = run.request.request_id
        rec.first_decode_token_s = float(tokens[0])
        if self.token_feed is not None:
            self.token_feed.schedule(self.peers, self.name, (rid,), tokens[:done], start)
        run.left -= done
        run.context += done
        self._grow(run)  # paged KV: its blocks hold the credited tokens too
        self.tokens_out += done
        if run.left > 0:
            self._load_hist.add(at, len(bounds), run.kv_bytes)
            return
        self._load_hist.add(at, at + done, run.kv_bytes)
        self._release(run)
        rec.last_token_s = float(tokens[done - 1])
        self._end(run.request, "completed", "", float(tokens[done - 1]))

    def _joined_tokens(self, run: Running, start_s: float, steps: int) -> np.ndarray:
        """Token times (emu s) of a request that joined at ``start_s`` in the past, up to the
        committed boundary: at most ``steps`` iterations of the running batch with it added."""
        b = len(self.running) + 1
        ctx0 = self._context + run.context
        step_s = decode_step_times(b, ctx0 + b * np.arange(steps, dtype=np.float64),
                                   self.model, self.hw, self.chips)
        tokens = start_s + np.cumsum(step_s * self.speed.factor_at(start_s))
        return tokens[tokens <= self.t + TIME_EPS_S]

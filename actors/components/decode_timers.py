"""A decode unit's running batch, stepped from loop timers. While the batch runs, the unit's task
waits on one future; each visible iteration boundary is a loop timer, and the work the task did
there — commit the iterations, admit, report, plan the next run — is a loop callback, one loop
step after the timer, as the task's wake-up was. What wakes the unit meanwhile (a KV, a speed
change, a cancel) re-aims the timer instead of waking the task. When the batch empties, the
callback does what the task's loop did up to its next wait and hands the wait back to the task
(the time it waits until). The loop callbacks come in the order the task's waits gave them (per
iteration boundary ≈ 25k a run without a future, a task step and two coroutine resumes each).
The loop's work up to a wait is written once (:meth:`BoundaryTimers._until_wait`), for the task
and the boundaries' calls alike. Mixed into :class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from disagg.actors.components.decode_late import Running
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.speed import SpeedSchedule
from disagg.actors.components.token_feed import TokenFeed
from disagg.cluster.component import TIME_EPS_S, Clock
from disagg.cluster.errors import CapacityExceeded
from disagg.cluster.timegate import TimeGate
from disagg.cluster.wake import Wake
from disagg.policies.base import PendingDecode


INF = float("inf")  # what BoundaryTimers._until_wait hands the task: wait for an input alone


class BoundaryTimers:
    """The decode unit's iteration from loop timers (see the module docstring)."""

    name: str
    clock: Clock
    gate: TimeGate
    peers: dict[str, Any]
    t: float
    running: dict[int, Running]
    pending: list[PendingDecode]
    cancels: dict[int, tuple[str, float]]
    speed: SpeedSchedule
    token_feed: TokenFeed | None
    reporter: LoadReporter
    wake: Wake
    _unseen: list[float]
    # the unit's (annotations only, so no stub overrides them in the MRO)
    _boundaries: Callable[[], np.ndarray]
    _advance: Callable[[int, np.ndarray], None]
    _admit: Callable[[], None]

    def _init_timers(self) -> None:
        self._handoff: asyncio.Future[float] | None = None  # the task's wait while stepping
        self._timer: asyncio.Handle | None = None  # the next boundary's (or the call after it)
        self._aim_s = 0.0  # the release time (emu s) the timer is set for
        self._due = False  # the timer has run: the boundary's call is queued
        self._edges: np.ndarray = np.zeros(1)
        self._idx = 0

    async def _stepping(self) -> float:
        """Wait while the running batch steps from loop timers (:meth:`_until_wait` aimed the
        first boundary); the wait to take once it empties."""
        assert self._handoff is not None
        try:
            return await self._handoff
        finally:  # (also when the task is cancelled: no boundary runs after it)
            self._handoff, self._due = None, False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _poke(self) -> None:
        """An input the running batch's plan depends on came: re-aim the boundary timer while
        stepping from timers, else wake the task."""
        if self._handoff is not None and not self._handoff.done():
            self._aim()
        else:
            self.wake.set()

    def _plan_next(self) -> None:
        edges = self._edges = self._boundaries()
        if self.token_feed is not None:
            self.token_feed.schedule(self.peers, self.name, list(self.running), edges[1:], self.t)
        # index in edges of the boundary at which the next visible event happens (= the steps
        # to it); the first boundary at or after x >= t is edges[max(1, edges.searchsorted(x))]
        self._idx = len(edges) - 1
        self._aim()

    def _aim(self) -> None:
        """Aim the timer at the release time of the first boundary at which something visible
        happens: the plan's last, or where a request becoming ready joins, a cancelled one
        leaves or a new speed applies."""
        edges, idx = self._edges, self._idx
        if self._unseen:  # a request becoming ready joins at the first boundary at or after it
            first = max(min(self._unseen), self.t)
            idx = min(idx, max(1, int(edges.searchsorted(first))))
        cut = [self.cancels[rid][1] for rid in self.running if rid in self.cancels] \
            if self.cancels else None
        if cut:  # a cancelled request leaves at the first boundary at or after its cancel
            idx = min(idx, max(1, int(edges.searchsorted(max(min(cut), self.t)))))
        change = self.speed.next_change_after(self.t) if self.speed.times else None
        if change is not None:  # a new speed applies from the first boundary at or after it
            idx = min(idx, max(1, int(edges.searchsorted(change))))
        self._idx = idx
        if self._due:  # the boundary's call is queued: it steps to the newest index
            return
        at = self.gate.release_s(float(edges[idx]))
        if self._timer is not None:
            if at == self._aim_s:
                return
            self._timer.cancel()
        self._aim_s = at
        delay = self.clock.loop_delay_s(at)
        if delay > 0:
            self._timer = self.clock.event_loop().call_later(delay, self._on_due)
        else:  # the boundary has come: its call runs next, as a wait that ended at once
            self._on_due()

    def _on_due(self) -> None:
        self._due = True
        self._timer = self.clock.event_loop().call_soon(self._on_boundary)

    def _on_boundary(self) -> None:
        """Commit the iterations to the aimed boundary and go on as the task's loop did."""
        self._timer, self._due = None, False
        handoff = self._handoff
        assert handoff is not None
        try:
            self._advance(self._idx, self._edges)
            resume = self._until_wait()
        except Exception as e:  # noqa: BLE001 - raised by the unit's task
            handoff.set_exception(e)
            return
        if resume is not None:
            handoff.set_result(resume)

    def _until_wait(self) -> float | None:
        """The unit's loop from where it stands up to its next wait: None if the batch runs
        (its next boundary aimed: :meth:`_stepping` waits for it to empty), else the emu time
        the unit's task (``run``) waits until, or an input comes (INF: an input alone), its
        wake cleared. The task and the boundaries' calls both go on from here."""
        while True:
            if not self.running:
                if not self.pending:
                    self.reporter.flush()
                    self.wake.clear()
                    return INF
                t = max(self.t, self.pending[0].ready_s)
                if self.reporter.held_s != t:  # nothing joins at the boundary: report it now
                    self.reporter.flush()
                if self._ahead(t):
                    return t
            self._admit()
            self.reporter.flush()  # the boundary's finishes and joins: one report
            if self.running:
                if self._handoff is None:  # (from the task: it waits on this meanwhile)
                    self._handoff = self.clock.event_loop().create_future()
                self._plan_next()
                return None
            if self.pending:  # wait for the first pending request not ready yet
                later = [p.ready_s for p in self.pending if p.ready_s > self.t + TIME_EPS_S]
                if not later:
                    raise CapacityExceeded(f"{self.name}: a pending request fits in no empty "
                                           "batch")
                t = min(later)
                if self._ahead(t):
                    return t

    def _ahead(self, t: float) -> bool:
        """True if the unit must wait for emu time ``t`` (its gate's release time for it is still
        ahead), its wake cleared for the wait; else it stands at ``t`` now."""
        self.wake.clear()
        if self.clock.loop_delay_s(self.gate.release_s(t)) > 0:
            return True
        self.t = t
        return False

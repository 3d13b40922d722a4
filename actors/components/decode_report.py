"""What a decode unit sends out besides tokens: each request's end with its records (to the
collector: the records that came with its KV, then this unit's ``DecodeRecord``), its load
after each change of its batch (to the router, through its ``LoadReporter``), its history's
final bins and its snapshot (live view and results). Mixed into
:class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from disagg.actors.components.decode_late import Running
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.kept_kv import KeptKv
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import SERIES_MARGIN_S, Clock
from disagg.cluster.messages import LoadReport, Request, RequestEnded
from disagg.policies.base import PendingDecode

_kv_bytes_of = attrgetter("kv_bytes")  # a pending request's KV bytes


class DecodeReports:
    """The decode unit's messages to the collector and the router, and its own accounts."""

    name: str
    clock: Clock
    t: float
    pending: list[PendingDecode]
    running: dict[int, Running]
    _left: int
    _context: int
    kv_used_bytes: float
    kv_capacity_bytes: float
    kept: KeptKv | None
    records: dict[int, RequestDraft]
    _carried: dict[int, tuple[Any, ...]]
    peers: dict[str, Any]
    reporter: LoadReporter
    log: UnitLog
    tokens_out: int
    busy_s: float
    _identity: Callable[[], dict[str, Any]]  # the component's (annotation only, no stub)

    def _end(self, request: Request, status: str, reason: str, t: float) -> None:
        """Send the request's end, with the records it came with and this unit's record."""
        rid = request.request_id
        draft = self.records.pop(rid, None)  # (a default RequestDraft() would be built per call)
        if draft is None:
            draft = RequestDraft()
        record = draft.decode_record(rid, request.attempt)
        carried = self._carried.pop(rid, (request,))
        self.peers["collector"].send(
            RequestEnded(rid, status, reason, t, (*carried, record)))  # type: ignore[arg-type]

    def _changed(self, hold: bool = False) -> None:
        """The batch changed at the committed boundary: log it and report it (``hold``: at the
        unit's next wait, so the boundary's admissions go in the same report)."""
        self.log.state(self.t, len(self.pending), len(self.running), self.kv_used_bytes)
        self.reporter.router = self.peers["router"]
        if hold:
            self.reporter.hold(self.t)
        else:
            self.reporter.changed(self.t)

    def _load(self, t: float) -> LoadReport:
        # the same additions in the same order as a genexpr's sum, without the generator
        queued = sum(map(_kv_bytes_of, self.pending)) if self.pending else 0.0
        return LoadReport(
            self.name, "decode", len(self.pending),
            self._left, len(self.running),
            self.kv_used_bytes + queued, self.kv_capacity_bytes,
            self.t, sent_s=t, running_tokens=self._context,
            cached_blocks=self.kept.cache.changes() if self.kept is not None else frozenset(),
        )

    def drain_series(self) -> list[dict[str, Any]]:
        """Final bins of the unit's history: its next work starts at the committed boundary."""
        frontier = min(self.clock.now(), self.t) - SERIES_MARGIN_S
        series = self.log.pop_final(frontier)
        return [] if series is None else [{"entity": self.name, **self._identity(), **series}]

    def snapshot(self) -> dict[str, Any]:
        """Running batch, pending requests, KV in use of capacity, cumulative tokens and busy s."""
        return {
            "name": self.name, **self._identity(), "running": len(self.running), "pending": len(self.pending),
            "kv_used_bytes": self.kv_used_bytes, "kv_capacity_bytes": self.kv_capacity_bytes,
            "tokens_out": self.tokens_out, "tokens_done": self.tokens_out, "busy_s": self.busy_s,
        }

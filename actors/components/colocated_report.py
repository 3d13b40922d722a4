"""What a colocated unit sends out besides tokens: each request's end with its records (to the
collector: the records that came with it, then this unit's ``PrefillRecord`` and ``DecodeRecord``
— the router writes both routings, this unit being the request's prefill and decode unit;
``cluster/records.py``), its load after each change (to the router, through its
``LoadReporter``), its history's final bins and its snapshot (live view and results). Mixed into
:class:`~disagg.actors.components.colocated.ColocatedUnit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disagg.actors.components.colocated_kv import Decoding, Prefilling
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import SERIES_MARGIN_S, Clock
from disagg.cluster.messages import LoadReport, Request, RequestEnded


class ColocatedReports:
    """The colocated unit's messages to the collector and the router, and its own accounts."""

    name: str
    clock: Clock
    t: float
    waiting: list[Prefilling]
    decoding: dict[int, Decoding]
    kv: dict[int, float]  # KV bytes per started request, in start order (ColocatedKv's)
    kv_used_bytes: float  # ColocatedKv's property
    kv_capacity_bytes: float
    records: dict[int, RequestDraft]
    _carried: dict[int, tuple[Any, ...]]
    peers: dict[str, Any]
    reporter: LoadReporter
    log: UnitLog
    tokens_out: int
    busy_s: float
    # the unit's (annotations only, so no stub overrides them in the MRO)
    _draft: Callable[[int], RequestDraft]
    _identity: Callable[[], dict[str, Any]]

    def _end(self, request: Request, status: str, reason: str, t: float) -> None:
        """Send the request's end with the records it came with and this unit's records."""
        rid = request.request_id
        rec = self.records.pop(rid, None)  # (a default RequestDraft() would be built per call)
        if rec is None:
            rec = RequestDraft()
        mine: list[Any] = []
        if rec.first_token_s is not None:
            mine.append(rec.prefill_record(rid, request.attempt))
            mine.append(rec.decode_record(rid, request.attempt))
        carried = self._carried.pop(rid, (request,))
        self.peers["collector"].send(
            RequestEnded(rid, status, reason, t, (*carried, *mine)))  # type: ignore[arg-type]

    def _finish(self, request: Request, t: float) -> None:
        """The request completed at ``t`` (emu s): its KV freed, its last token, its end."""
        self.kv.pop(request.request_id, None)
        self._draft(request.request_id).last_token_s = t
        self._end(request, "completed", "", t)

    def drain_series(self) -> list[dict[str, Any]]:
        """Final bins of the unit's history: its next work starts at the committed boundary."""
        series = self.log.pop_final(min(self.clock.now(), self.t) - SERIES_MARGIN_S)
        return [] if series is None else [{"entity": self.name, **self._identity(), **series}]

    def _changed(self, t: float) -> None:
        """The unit's state changed at ``t`` (emu s): log it and report it to the router."""
        self.log.state(t, sum(1 for w in self.waiting if not w.started), len(self.decoding),
                       self.kv_used_bytes)
        self.reporter.router = self.peers["router"]
        self.reporter.changed(t)

    def _load(self, t: float) -> LoadReport:
        return LoadReport(
            self.name, "colocated", sum(1 for w in self.waiting if not w.started),
            sum(w.tokens - w.done for w in self.waiting),
            len(self.decoding) + sum(1 for w in self.waiting if w.started),
            self.kv_used_bytes, self.kv_capacity_bytes, self.t, sent_s=t,
            running_tokens=sum(d.context for d in self.decoding.values()),
        )

    def snapshot(self) -> dict[str, Any]:
        """Waiting and prefilling requests, the decoding batch, KV in use, tokens out, busy s."""
        return {
            "name": self.name, **self._identity(),
            "queue": sum(1 for w in self.waiting if not w.started),
            "prefilling": sum(1 for w in self.waiting if w.started),
            "running": len(self.decoding), "kv_used_bytes": self.kv_used_bytes,
            "kv_capacity_bytes": self.kv_capacity_bytes, "tokens_done": self.tokens_out,
            "busy_s": self.busy_s,
        }

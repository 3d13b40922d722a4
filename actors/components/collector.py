"""The collector: every request's one final status, its row, and when the run is over.

Each ``RequestEnded`` brings the request's records (``cluster/records.py``); the collector folds
them into the request's ``requests.parquet`` row at once and keeps only what in-flight requests
need. Finished rows wait in a reorder buffer so they leave in request-id order, and the engine
drains them (:meth:`Collector.drain`) into the results sink as the run goes. A redone request's
row is held until the final drain, so that the records of every attempt can be folded (the latest
attempt's stand; the first end stands).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from disagg.actors.components.live_aggregate import LiveAggregator
from disagg.actors.components.live_state import StateReport
from disagg.cluster.component import Clock, Component
from disagg.cluster.messages import (
    Arrivals,
    ArrivalsDone,
    Request,
    RequestAmended,
    RequestEnded,
    RequestRedone,
)
from disagg.cluster.records import (
    DecodeRecord,
    DecodeRouting,
    EndRecord,
    PrefillRecord,
    PrefillRouting,
)
from disagg.cluster.rows import fold, transfer_rows
from disagg.cluster.sketch import QuantileSketch

REORDER_LIMIT = 50_000
"""Finished rows held for request-id order at most; past it the lowest go out regardless (a
request stuck that long then lands out of order, when it ends)."""


_FORWARDED = (PrefillRouting, PrefillRecord, DecodeRouting, DecodeRecord)
"""The records a forwarded ``RequestEnded`` keeps (what the gateway reads of them)."""


class DuplicateStatus(RuntimeError):
    """A request was ended twice: a bug in a component."""


class EndedIds:
    """The set of request ids that have ended, as a bitmap (one bit per id)."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def add(self, rid: int) -> None:
        byte = rid >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (rid & 7)
        self._count += 1

    def __contains__(self, rid: object) -> bool:
        if not isinstance(rid, int) or rid < 0 or (rid >> 3) >= len(self._bits):
            return False
        return bool(self._bits[rid >> 3] & (1 << (rid & 7)))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Any:
        for byte, bits in enumerate(self._bits):
            if bits:
                yield from (byte * 8 + i for i in range(8) if bits & (1 << i))


@dataclass
class Drained:
    """What one drain hands the results sink: finished rows (request-id order), their transfer
    rows, the ids that ended since the last drain (the router forgets them), and the components'
    timeseries bins that became final (``Component.drain_series``; the engine adds them)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    ended_ids: list[int] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Drained) -> None:
        """Keep ``other``'s rows too (a sink that holds everything in memory)."""
        self.rows.extend(other.rows)
        self.transfers.extend(other.transfers)
        self.series.extend(other.series)


class Collector(Component):
    """Folds ended requests into rows; ``done`` is set once every submitted request has ended."""

    def __init__(self, name: str, clock: Clock, forward_ended_to: str | None = None) -> None:
        super().__init__(name, clock)
        self.forward_ended_to = forward_ended_to  # closed-loop workloads: the load generator
        self.ended = EndedIds()
        self.submitted: int | None = None
        self.done = asyncio.Event()
        self.redone: dict[int, str] = {}  # request id -> the unit it lost (last)
        self.attempts: dict[int, int] = {}  # redone request id -> attempts so far
        self.ignored_ends = 0
        self.open: dict[int, Request] = {}  # arrived, not yet ended
        self._early: set[int] = set()  # ended before their arrival was reported
        self._redone_rows: dict[int, tuple[list[Any], EndRecord]] = {}  # redone: folded at the end
        self._order: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._next_rid = 0
        self._out = Drained()
        self.itl_gaps = QuantileSketch()  # first token -> first decode token, emu s
        self._counts = {"completed": 0, "rejected": 0, "failed": 0, "cancelled": 0}
        self.live = LiveAggregator()
        self.handlers = {RequestEnded: self._on_ended, ArrivalsDone: self._on_arrivals_done,
                         RequestRedone: self._on_redone, StateReport: self.live.add,
                         Arrivals: self._on_arrivals, RequestAmended: self._on_amended}
        self._amended: dict[int, Request] = {}  # not yet ended: as the router passed it on

    def _on_arrivals(self, msg: Arrivals) -> None:
        for r in msg.requests:  # idempotent: an engine may report arrivals again
            r = self._amended.get(r.request_id, r)
            if r.request_id in self._early:
                self._early.discard(r.request_id)
            elif r.request_id not in self.ended:
                self.open[r.request_id] = r

    def _on_amended(self, msg: RequestAmended) -> None:
        rid = msg.request.request_id
        if rid not in self.ended:
            self._amended[rid] = msg.request
            if rid in self.open:
                self.open[rid] = msg.request

    def _on_redone(self, msg: RequestRedone) -> None:
        self.redone[msg.request_id] = msg.lost_unit
        self.attempts[msg.request_id] = self.attempts.get(msg.request_id, 1) + 1

    def _on_ended(self, msg: RequestEnded) -> None:
        rid = msg.request_id
        if rid in self.ended:
            if rid not in self.redone:
                raise DuplicateStatus(f"request {rid} ended twice (then {msg.status})")
            self.ignored_ends += 1  # a redone request: its first end stands, its records count
            if rid in self._redone_rows:
                self._redone_rows[rid][0].extend(msg.records)
            else:
                self._late_attempt(rid, msg.records)
            return
        self.ended.add(rid)
        self._amended.pop(rid, None)
        self._out.ended_ids.append(rid)
        if self.open.pop(rid, None) is None:
            self._early.add(rid)
        self._counts[msg.status] += 1
        end = EndRecord(rid, msg.status, msg.reason, msg.sent_s, self.attempts.get(rid, 1),
                        self.redone.get(rid))
        if rid in self.redone:
            self._redone_rows[rid] = (list(msg.records), end)
        else:
            self._finish(msg.records, end)
        if msg.status != "completed":
            self.live.forget(rid, any(type(r) is PrefillRecord for r in msg.records))
        if self.forward_ended_to is not None:
            # the units' records and routings (preemptions; the units and the first token: the
            # end can reach the gateway before the units' own notices do)
            units = tuple(r for r in msg.records if isinstance(r, _FORWARDED))
            self.peers[self.forward_ended_to].send(
                RequestEnded(rid, msg.status, msg.reason, msg.sent_s, units))
        self._check_done()

    def _late_attempt(self, rid: int, records: Sequence[Any]) -> None:
        """The end of an attempt redone after its request had ended (ray engine: the lost
        unit's end was on its way when the router redid the request). The request's row stands
        as it ended; the attempt's KV transfers still crossed the fabric, so their rows are kept
        (with the row if it is not out yet, else on their own)."""
        transfers = transfer_rows(records)
        if rid in self._order:
            self._order[rid][1].extend(transfers)
        else:
            self._out.transfers.extend(transfers)

    def _finish(self, records: Sequence[Any], end: EndRecord | None) -> None:
        row = fold(records, end)
        self._itl_gap(row)
        self._order[row["request_id"]] = (row, transfer_rows(records))
        self._release(final=False)

    def _itl_gap(self, row: dict[str, Any]) -> None:
        """A completed request's first decode token's gap counts from its first token."""
        first = row.get("first_decode_token_s")
        if row["status"] == "completed" and first is not None and row.get("first_token_s") is not None:
            self.itl_gaps.add(first - row["first_token_s"])

    def _release(self, final: bool) -> None:
        while self._next_rid in self._order:
            self._emit(self._next_rid)
            self._next_rid += 1
        if final or len(self._order) > REORDER_LIMIT:
            keep = 0 if final else REORDER_LIMIT // 2
            for rid in sorted(self._order)[: len(self._order) - keep]:
                self._emit(rid)
                self._next_rid = max(self._next_rid, rid + 1)

    def _emit(self, rid: int) -> None:
        row, transfers = self._order.pop(rid)
        self._out.rows.append(row)
        self._out.transfers.extend(transfers)

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Request, ...] = ()) -> Drained:
        """Hand over the rows finished since the last drain. ``final``: also the held (redone)
        rows and a row for every submitted request that never ended, with ``unfinished``'s
        (status, reason): by default failed, ``unfinished_at_drain_deadline``. ``arrivals``:
        requests sent but not yet reported (an interrupted run's), counted in first."""
        if arrivals:
            self._on_arrivals(Arrivals(arrivals, self.clock.now()))
        if final:
            for rid, (records, end) in sorted(self._redone_rows.items()):
                self._finish(records, dataclasses.replace(end, redone_from=self.redone.get(rid)))
            self._redone_rows.clear()
            status, reason = unfinished or ("failed", "unfinished_at_drain_deadline")
            for rid, request in sorted(self.open.items()):
                self._finish([request], EndRecord(rid, status, reason, None,
                                                  self.attempts.get(rid, 1),
                                                  self.redone.get(rid)))
            self.open.clear()
            self._release(final=True)
        out, self._out = self._out, Drained()
        return out

    def _on_arrivals_done(self, msg: ArrivalsDone) -> None:
        self.submitted = msg.submitted
        self._check_done()

    def _check_done(self) -> None:
        if self.submitted is not None and len(self.ended) >= self.submitted:
            self.done.set()

    def ended_ids(self) -> frozenset[int]:
        """Ids of the requests that have ended so far (the engine's :class:`RunLedger` view)."""
        return frozenset(self.ended)

    def counts(self) -> dict[str, int]:
        """Requests ended so far, by status."""
        return dict(self._counts)

    def results(self) -> dict[str, Any]:
        out = super().results()
        out["submitted"] = self.submitted
        out["redone"] = dict(self.redone)
        out["ignored_ends"] = self.ignored_ends
        out["itl_gaps"] = self.itl_gaps.state()
        return out

    def snapshot(self) -> dict[str, Any]:
        """Counts by status and, under ``live``, the cluster picture built from state reports."""
        return {"name": self.name, "submitted": self.submitted, **self.counts(),
                "live": self.live.snapshot(self.clock.now())}

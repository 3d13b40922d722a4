"""The router: asks its policy where each request's prefill and decode run, on a possibly stale
view of the units built from their load reports (and its own assignments since).

Prefix blocks: a unit's view holds the block ids of its last report, plus (prefill) the blocks of
the requests the router assigned to it since, as the unit will hold them once their batch starts.
With ``transfer_missing`` the KV sent to a decode unit leaves out the leading prompt blocks its
view says it holds.

It writes each request's routing records (``PrefillRouting``, ``DecodeRouting``) into the messages
that carry the request on, and raises ``Request.attempt`` when it redoes a request."""

from __future__ import annotations

import dataclasses
from typing import Any

from disagg.cluster.component import Clock, Component
from disagg.cluster.hardware.perf import kv_bytes
from disagg.actors.components.pins import PinnedRoutes
from disagg.actors.components.router_reports import ReportedViews
from disagg.cluster.messages import (
    PREFIX_BLOCK_TOKENS,
    DecodeLeg,
    KvReady,
    LoadReport,
    PrefillAssigned,
    Request,
    RequestAmended,
    RequestArrived,
    RequestEnded,
    RequestRedone,
    RequestsEnded,
    TransferRequested,
    UnitDown,
    UnitUp,
)
from disagg.cluster.prefix_cache import leading_overlap, with_blocks
from disagg.cluster.records import DecodeRouting, PrefillRouting, UnitId
from disagg.cluster.reported_blocks import ReportedBlocks
from disagg.policies.base import (
    PolicyContext,
    Reject,
    Route,
    RouterPolicy,
    RouterView,
    UnitView,
)
from disagg.policies.router import decode_kv_need


class Router(ReportedViews, Component):
    """Routes arrivals to prefill units and finished prefills to decode units via the fabric."""

    holds_messages = True

    def __init__(
        self, name: str, clock: Clock, policy: RouterPolicy, context: PolicyContext,
        units: list[UnitView], control_delay_s: float = 0.0, transfer_missing: bool = False,
        over_context: str = "reject",
    ) -> None:
        super().__init__(name, clock)
        self.policy = policy
        self.context = context
        self.views: dict[str, UnitView] = {u.name: u for u in units}
        self._prefill_names = [u.name for u in self.views.values()  # take new requests
                               if u.kind in ("prefill", "colocated")]
        self._decode_names = [u.name for u in self.views.values() if u.kind == "decode"]
        self.over_context = over_context  # "reject" or "truncate" a request beyond the context
        self._fresh = dict(self.views)  # what a unit looks like before any report
        self.control_delay_s = control_delay_s
        self.waiting: list[KvReady] = []
        self.unit_ids = _unit_ids(units)
        self.inflight: dict[int, tuple[Request, str]] = {}  # request id -> (request, unit holding it)
        self.down: set[str] = set()
        self.redone = 0
        self.transfer_missing = transfer_missing
        self.kv_reused_bytes = 0.0  # KV left out of transfers: the decode unit held it
        self.pins = PinnedRoutes()  # disagg serve --per-unit: the units clients chose
        self.reported_blocks = ReportedBlocks()  # each unit's held prefix blocks, as reported
        self._posted: list[LoadReport] = []  # arrived, not applied yet (router_reports.py)
        self.handlers = {
            RequestArrived: self._on_arrived, KvReady: self._on_kv_ready, LoadReport: self._on_report,
            UnitDown: self._on_unit_down, UnitUp: self._on_unit_up, RequestsEnded: self._on_ended,
            DecodeLeg: self._on_decode_leg,
        }

    def _on_ended(self, msg: RequestsEnded) -> None:
        for rid in msg.request_ids:
            self.inflight.pop(rid, None)

    def _view(self, now_s: float) -> RouterView:
        get = self.views.__getitem__
        return RouterView(now_s, tuple(map(get, self._prefill_names)),
                          tuple(map(get, self._decode_names)))

    def _on_arrived(self, msg: RequestArrived) -> None:
        t = msg.sent_s + self.control_delay_s
        self.decide_at(t)
        self.pins.arrived(msg)
        request = self._fit_context(msg.request, t)
        if request is not None:
            self._route_prefill(request, t)

    def _fit_context(self, request: Request, t: float) -> Request | None:
        """The request if it fits the model's context; else rejected (None) or, under
        ``truncate``, with its prompt cut to what fits beside its output (tokens)."""
        limit = self.context.model.max_context_tokens
        if limit is None or request.prompt_tokens + request.output_tokens <= limit:
            return request
        room = limit - request.output_tokens
        if self.over_context != "truncate" or room < 1:
            self._end(request, "rejected", "exceeds_context", t, (request,))
            return None
        # the truncated copy is the request's record from here on (its row's prompt_tokens)
        cut = dataclasses.replace(request, prompt_tokens=room)
        self.peers["collector"].send(RequestAmended(cut, t))
        return cut

    def _route_prefill(self, request: Request, t: float) -> None:
        if self._posted:
            self._take_posted()
        decision = self.pins.prefill(request) or self.policy.choose_prefill(request, self._view(t))
        if isinstance(decision, Reject):
            self._end(request, "rejected", decision.reason, t, (request,))
            return
        unit = self._checked(decision, ("prefill", "colocated"))
        routing = PrefillRouting(request.request_id, request.attempt, self.unit_ids[unit.name],
                                 t - unit.reported_s)
        self.inflight[request.request_id] = (request, unit.name)
        held = with_blocks(unit.cached_blocks, request.prefix_hashes)
        self.views[unit.name] = UnitView(  # dataclasses.replace, spelt out: once per request
            unit.name, unit.kind, unit.queued_requests + 1, unit.queued_tokens + request.prompt_tokens,
            unit.running_requests, unit.running_tokens, unit.kv_used_bytes, unit.kv_capacity_bytes,
            unit.free_at_s, unit.reported_s, unit.up, held,
        )
        records: tuple[Any, ...] = (request, routing)
        if unit.kind == "colocated":  # the unit decodes it too: no second placement decision
            records += (DecodeRouting(request.request_id, request.attempt, routing.prefill_unit,
                                      None),)
        self.peers[unit.name].send(PrefillAssigned(request, t, records))

    def _on_kv_ready(self, msg: KvReady) -> None:
        t = msg.sent_s + self.control_delay_s
        self.decide_at(t, stream="kv")  # released later than arrivals (cluster/timegate.py)
        if self._superseded(msg.request):
            return
        original = msg.request
        msg = self.pins.kv_ready(msg)
        if msg.request.request_id in self.pins.parked:
            return  # its decode leg has not come yet
        if msg.request is not original:  # its decode leg came first: the row's output length
            self.peers["collector"].send(RequestAmended(msg.request, t))
        if not self._place_decode(msg, t):
            self.waiting.append(msg)

    def _superseded(self, request: Request) -> bool:
        """True if ``request`` is an attempt the router has redone since: the KV of a prefill
        unit declared lost that was sent before the loss and came after it (ray engine: the
        actor is killed asynchronously). The newer attempt goes on; this one must not be placed,
        or its KV, owned by the dead actor, would end the request ``kv_missing``."""
        held = self.inflight.get(request.request_id)
        return held is not None and held[0].attempt > request.attempt

    def _on_decode_leg(self, msg: DecodeLeg) -> None:
        """A P/D request's decode leg came: its KV (now, or when its prefill ends) goes to the
        unit the client chose; its row's output length is the decode leg's."""
        t = msg.sent_s + self.control_delay_s
        self.decide_at(t, stream="kv")
        ready = self.pins.decode_leg(msg)
        if ready is not None:
            self.peers["collector"].send(RequestAmended(ready.request, t))
            self._place_decode(ready, max(t, ready.sent_s))

    def _place_decode(self, msg: KvReady, t: float) -> bool:
        if self._posted:
            self._take_posted()
        request = msg.request
        decision = self.pins.decode(request) or self.policy.choose_decode(request, self._view(t))
        if isinstance(decision, Reject):
            self._end(request, "failed", decision.reason, t, msg.records)
            return True
        if not isinstance(decision, Route):
            return False
        unit = self._checked(decision, ("decode",))
        routing = DecodeRouting(request.request_id, request.attempt, self.unit_ids[unit.name],
                                t - unit.reported_s)
        self.inflight[request.request_id] = (request, unit.name)
        need = decode_kv_need(request, self.context)
        self.views[unit.name] = UnitView(  # dataclasses.replace, spelt out: once per request
            unit.name, unit.kind, unit.queued_requests + 1, unit.queued_tokens,
            unit.running_requests, unit.running_tokens, unit.kv_used_bytes + need,
            unit.kv_capacity_bytes, unit.free_at_s, unit.reported_s, unit.up, unit.cached_blocks,
        )
        reused = leading_overlap(request.prefix_hashes, unit.cached_blocks) \
            if self.transfer_missing else 0
        send_bytes = msg.kv_bytes
        if reused:
            held_tokens = min(reused * PREFIX_BLOCK_TOKENS, request.prompt_tokens)
            send_bytes = max(0.0, msg.kv_bytes - float(kv_bytes(held_tokens, self.context.model)))
            self.kv_reused_bytes += msg.kv_bytes - send_bytes
        self.peers["fabric"].send(
            TransferRequested(request, msg.prefill_unit, unit.name, send_bytes, msg.payload, t,
                              msg.layers_ready_s, reused, (*msg.records, routing))
        )
        return True

    def _on_report(self, msg: LoadReport) -> None:
        if self._posted:  # those arrived before this one
            self._take_posted()
        if not self._apply_report(msg):
            return
        if self.waiting and msg.kind == "decode":
            t = msg.sent_s + self.control_delay_s
            retry, self.waiting = self.waiting, []
            self.waiting = [w for w in retry if not self._place_decode(w, max(t, w.sent_s))]

    def _on_unit_down(self, msg: UnitDown) -> None:
        """Mark the unit down and redo, from prefill, every unfinished request it held."""
        if self._posted:
            self._take_posted()
        t = max(msg.sent_s, self.last_decision_s)
        self.decide_at(t)
        self.down.add(msg.unit)
        self.views[msg.unit] = dataclasses.replace(self.views[msg.unit], up=False, reported_s=t)
        lost = [req for rid, (req, unit) in self.inflight.items()
                if unit == msg.unit and rid not in msg.ended_ids]
        lost_ids = {r.request_id for r in lost}
        self.waiting = [w for w in self.waiting if w.request.request_id not in lost_ids
                        and w.prefill_unit != msg.unit]
        for request in sorted(lost, key=lambda r: r.request_id):
            self.redone += 1
            self.peers["collector"].send(RequestRedone(request.request_id, msg.unit, t))
            self._route_prefill(dataclasses.replace(request, attempt=request.attempt + 1), t)

    def _on_unit_up(self, msg: UnitUp) -> None:
        """A fresh unit replaced a lost one: it is up and empty from ``sent_s``."""
        if self._posted:
            self._take_posted()
        t = max(msg.sent_s, self.last_decision_s)
        self.decide_at(t)
        self.down.discard(msg.unit)
        self.views[msg.unit] = dataclasses.replace(self._fresh[msg.unit], reported_s=t)
        if self.waiting and self.views[msg.unit].kind == "decode":
            retry, self.waiting = self.waiting, []
            self.waiting = [w for w in retry if not self._place_decode(w, max(t, w.sent_s))]

    def _checked(self, decision: Route, kinds: tuple[str, ...]) -> UnitView:
        unit = self.views.get(decision.unit)
        if unit is None or unit.kind not in kinds:
            raise ValueError(f"router policy chose {decision.unit!r}, not a {' or '.join(kinds)}"
                             " unit")
        return unit

    def _end(self, request: Request, status: str, reason: str, t: float,
             records: tuple[Any, ...]) -> None:
        self.inflight.pop(request.request_id, None)
        self.peers["collector"].send(
            RequestEnded(request.request_id, status, reason, t, records))  # type: ignore[arg-type]

    def results(self) -> dict[str, Any]:
        out = super().results()
        out["units_down"] = sorted(self.down)
        out["redone"] = self.redone
        out["kv_reused_bytes"] = self.kv_reused_bytes
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "waiting_for_decode": len(self.waiting),
                "units_down": sorted(self.down), "redone": self.redone}


def _unit_ids(units: list[UnitView]) -> dict[str, UnitId]:
    """Each unit's identity: its kind and its position among the units of that kind."""
    seen: dict[str, int] = {}
    out = {}
    for u in units:
        out[u.name] = UnitId(u.kind, seen.get(u.kind, 0))
        seen[u.kind] = seen.get(u.kind, 0) + 1
    return out

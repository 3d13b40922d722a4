"""The router: asks its policy where each request's prefill and decode run, on a possibly stale
view of the units built from their load reports (and its own assignments since).

It writes each request's routing records (``PrefillRouting``, ``DecodeRouting``) into the messages
that carry the request on, and raises ``Request.attempt`` when it redoes a request."""

from __future__ import annotations

import dataclasses
from typing import Any

from disagg.cluster.component import Clock, Component
from disagg.cluster.messages import (
    KvReady,
    LoadReport,
    PrefillAssigned,
    Request,
    RequestArrived,
    RequestEnded,
    RequestRedone,
    RequestsEnded,
    TransferRequested,
    UnitDown,
)
from disagg.cluster.records import DecodeRouting, PrefillRouting, UnitId
from disagg.policies.base import (
    PolicyContext,
    Reject,
    Route,
    RouterPolicy,
    RouterView,
    UnitView,
)
from disagg.policies.router import decode_kv_need


class Router(Component):
    """Routes arrivals to prefill units and finished prefills to decode units via the fabric."""

    def __init__(
        self, name: str, clock: Clock, policy: RouterPolicy, context: PolicyContext,
        units: list[UnitView], control_delay_s: float = 0.0,
    ) -> None:
        super().__init__(name, clock)
        self.policy = policy
        self.context = context
        self.views: dict[str, UnitView] = {u.name: u for u in units}
        self.control_delay_s = control_delay_s
        self.waiting: list[KvReady] = []
        self.unit_ids = _unit_ids(units)
        self.inflight: dict[int, tuple[Request, str]] = {}  # request id -> (request, unit holding it)
        self.down: set[str] = set()
        self.redone = 0
        self.handlers = {
            RequestArrived: self._on_arrived, KvReady: self._on_kv_ready, LoadReport: self._on_report,
            UnitDown: self._on_unit_down, RequestsEnded: self._on_ended,
        }

    def _on_ended(self, msg: RequestsEnded) -> None:
        for rid in msg.request_ids:
            self.inflight.pop(rid, None)

    def _view(self, now_s: float) -> RouterView:
        units = self.views.values()
        return RouterView(
            now_s,
            tuple(u for u in units if u.kind == "prefill"),
            tuple(u for u in units if u.kind == "decode"),
        )

    def _on_arrived(self, msg: RequestArrived) -> None:
        t = msg.sent_s + self.control_delay_s
        self.decide_at(t)
        self._route_prefill(msg.request, t)

    def _route_prefill(self, request: Request, t: float) -> None:
        decision = self.policy.choose_prefill(request, self._view(t))
        if isinstance(decision, Reject):
            self._end(request, "rejected", decision.reason, t, (request,))
            return
        unit = self._checked(decision, "prefill")
        routing = PrefillRouting(request.request_id, request.attempt, self.unit_ids[unit.name],
                                 t - unit.reported_s)
        self.inflight[request.request_id] = (request, unit.name)
        self.views[unit.name] = dataclasses.replace(
            unit, queued_requests=unit.queued_requests + 1,
            queued_tokens=unit.queued_tokens + request.prompt_tokens,
        )
        self.peers[unit.name].send(PrefillAssigned(request, t, (request, routing)))

    def _on_kv_ready(self, msg: KvReady) -> None:
        t = msg.sent_s + self.control_delay_s
        self.decide_at(t)
        if not self._place_decode(msg, t):
            self.waiting.append(msg)

    def _place_decode(self, msg: KvReady, t: float) -> bool:
        request = msg.request
        decision = self.policy.choose_decode(request, self._view(t))
        if isinstance(decision, Reject):
            self._end(request, "failed", decision.reason, t, msg.records)
            return True
        if not isinstance(decision, Route):
            return False
        unit = self._checked(decision, "decode")
        routing = DecodeRouting(request.request_id, request.attempt, self.unit_ids[unit.name],
                                t - unit.reported_s)
        self.inflight[request.request_id] = (request, unit.name)
        need = decode_kv_need(request, self.context)
        self.views[unit.name] = dataclasses.replace(
            unit, queued_requests=unit.queued_requests + 1, kv_used_bytes=unit.kv_used_bytes + need
        )
        self.peers["fabric"].send(
            TransferRequested(request, msg.prefill_unit, unit.name, msg.kv_bytes, msg.payload, t,
                              msg.layers_ready_s, (*msg.records, routing))
        )
        return True

    def _on_report(self, msg: LoadReport) -> None:
        t = msg.sent_s + self.control_delay_s
        old = self.views[msg.unit]
        if msg.sent_s < old.reported_s or msg.unit in self.down:
            return  # an older report overtaken by a newer one, or a unit already lost
        self.views[msg.unit] = UnitView(
            msg.unit, msg.kind, msg.queued_requests, msg.queued_tokens, msg.running_requests,
            msg.running_tokens, msg.kv_used_bytes, msg.kv_capacity_bytes, msg.free_at_s,
            msg.sent_s, msg.up,
        )
        if self.waiting and msg.kind == "decode":
            retry, self.waiting = self.waiting, []
            self.waiting = [w for w in retry if not self._place_decode(w, max(t, w.sent_s))]

    def _on_unit_down(self, msg: UnitDown) -> None:
        """Mark the unit down and redo, from prefill, every unfinished request it held."""
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

    def _checked(self, decision: Route, kind: str) -> UnitView:
        unit = self.views.get(decision.unit)
        if unit is None or unit.kind != kind:
            raise ValueError(f"router policy chose {decision.unit!r}, not a {kind} unit")
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

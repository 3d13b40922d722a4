"""The serving gateway: stands in the load generator's place under ``disagg serve``.

Each HTTP request becomes an emulated :class:`Request` that the gateway sends to the router at its
arrival time, like the load generator does for a planned one. The units tell the gateway when each
request's tokens come out (``token_feed.py``) and the collector forwards every request's end, so
the gateway keeps, per request, a :class:`TokenPlan`: the first token's emu time, the decode
tokens' planned emu times and the final status. The HTTP side long-polls it (:meth:`Gateway.wait`)
and releases tokens to the client at those times; :meth:`Gateway.outcomes` hands finished requests
to the metrics. It tells the collector of each arrival (the collector makes every row). When
serving stops, :meth:`Gateway.close` tells the collector how many came in.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from disagg.cluster.component import TIME_EPS_S, Clock, Component
from disagg.cluster.messages import (
    Arrivals,
    ArrivalsDone,
    DecodeJoined,
    DecodeLeg,
    FirstTokenPlanned,
    Request,
    RequestArrived,
    RequestCancelled,
    RequestEnded,
    TokenSchedule,
)
from disagg.cluster.records import DecodeRecord, DecodeRouting, PrefillRecord, PrefillRouting
from disagg.cluster.workload.plan import SloTargets

SCHEDULE_WAIT_S = 1.0  # emu s a finished request's outcome waits for its decode token times


class GatewayClosed(RuntimeError):
    """A request was submitted after the gateway stopped taking arrivals."""


@dataclass(frozen=True)
class Pin:
    """The units a client chose (``disagg serve --per-unit``): ``prefill_unit`` (prefill or
    colocated) and ``decode_unit`` bypass the router's policy; ``decode_leg``: a P/D prefill leg,
    whose KV waits for its decode leg (:meth:`Gateway.decode_leg`)."""

    prefill_unit: str = ""
    decode_unit: str = ""
    decode_leg: bool = False


@dataclass
class TokenPlan:
    """One request's token times as the units planned them (emu s), and how it ended."""

    request: Request
    version: int = 0
    prefill_unit: str = ""
    prefill_start_s: float | None = None
    first_token_s: float | None = None
    cached_tokens: int = 0
    decode_unit: str = ""
    kv_bytes: float = 0.0
    transfer_s: tuple[float, float] | None = None
    decode_times_s: list[float] = field(default_factory=list)
    status: str = ""  # "" while running, then completed | rejected | failed
    reason: str = ""
    end_s: float | None = None
    preemptions: int = 0  # times its decode unit preempted it (paged KV), from its records

    def replan(self, start_s: float, times_s: tuple[float, ...]) -> None:
        """Keep decode tokens planned at or before ``start_s``, then the new times (capped at the
        request's ``output_tokens - 1`` decode tokens)."""
        kept = [t for t in self.decode_times_s if t <= start_s + 1e-12]
        room = max(0, self.request.output_tokens - 1 - len(kept))
        self.decode_times_s = kept + list(times_s[:room])

    def awaits_schedule(self, now_s: float) -> bool:
        """Completed on a decode unit under :data:`SCHEDULE_WAIT_S` before ``now_s``, its last
        decode token's time not in: its end overtook the unit's last ``TokenSchedule`` (ray)."""
        end_s = self.end_s
        return (self.status == "completed" and bool(self.decode_unit) and end_s is not None
                and now_s < end_s + SCHEDULE_WAIT_S and self.request.output_tokens > 1
                and (not self.decode_times_s or self.decode_times_s[-1] < end_s - TIME_EPS_S))

    def update(self, from_index: int) -> PlanUpdate:
        """What the HTTP side needs, with decode times from ``from_index`` on."""
        return PlanUpdate(
            self.request.request_id, self.version, self.first_token_s,
            tuple(self.decode_times_s[from_index:]), from_index, self.status, self.reason,
            self.end_s, self.prefill_unit, self.decode_unit, self.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    """A snapshot of one request's :class:`TokenPlan` for the HTTP side (emu s).

    ``decode_times_s[k]`` is decode token ``from_index + k``'s time; ``status`` is empty while the
    request runs."""

    request_id: int
    version: int
    first_token_s: float | None
    decode_times_s: tuple[float, ...]
    from_index: int
    status: str
    reason: str
    end_s: float | None
    prefill_unit: str = ""
    decode_unit: str = ""
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished request, for the metrics: units, phase times (emu s) and decode token times."""

    request_id: int
    status: str
    reason: str
    prompt_tokens: int
    output_tokens: int
    arrival_s: float
    prefill_unit: str
    prefill_start_s: float | None
    first_token_s: float | None
    decode_unit: str
    kv_bytes: float
    transfer_s: tuple[float, float] | None
    decode_times_s: tuple[float, ...]
    end_s: float | None
    preemptions: int = 0


class Gateway(Component):
    """Turns submitted requests into arrivals at the router and tracks their token plans."""

    def __init__(self, name: str, clock: Clock, slo: SloTargets,
                 units: tuple[str, ...] = ()) -> None:
        super().__init__(name, clock)
        self.slo = slo
        self.units = units  # the prefill and decode units a cancel goes to
        self.plans: dict[int, TokenPlan] = {}
        self.finished: list[int] = []  # request ids in the order they ended
        self.closed = False
        self._changed: dict[int, asyncio.Event] = {}
        self._last_arrival_s = 0.0
        self._legs_due: set[int] = set()  # P/D requests whose decode leg has not come
        self.handlers = {FirstTokenPlanned: self._on_first, DecodeJoined: self._on_joined,
                         TokenSchedule: self._on_schedule, RequestEnded: self._on_ended}

    # -- the HTTP side ----------------------------------------------------------------------
    def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
               pin: Pin | None = None) -> int:
        """Admit one request arriving at emu time ``arrival_s`` (no earlier than the previous
        arrival) and send it to the router, with the units the client chose; its request id."""
        if self.closed:
            raise GatewayClosed("the server is shutting down")
        rid = len(self.plans)
        arrival_s = max(arrival_s, self._last_arrival_s)
        self._last_arrival_s = arrival_s
        request = Request(rid, arrival_s, prompt_tokens, output_tokens, "default",
                          self.slo.ttft_s, self.slo.tpot_s)
        self.plans[rid] = TokenPlan(request)
        if pin is not None and pin.decode_leg:
            self._legs_due.add(rid)
        self.act_at(arrival_s)
        pin = pin or Pin()
        self.peers["router"].send(RequestArrived(request, arrival_s, pin.prefill_unit,
                                                 pin.decode_unit, pin.decode_leg))
        self.peers["collector"].send(Arrivals((request,), arrival_s))
        return rid

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """The request's plan once its version exceeds ``version`` (or after ``timeout_s`` wall
        seconds, unchanged)."""
        plan = self.plans[request_id]
        if plan.version <= version and not plan.status:
            event = self._changed.setdefault(request_id, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except TimeoutError:
                pass
        return plan.update(from_index)

    def decode_leg(self, request_id: int, decode_unit: str, output_tokens: int) -> bool:
        """The decode leg of P/D request ``request_id`` reached ``decode_unit``, asking for
        ``output_tokens`` in all: its KV goes there (False if it ended or was no P/D request)."""
        plan = self.plans.get(request_id)
        if plan is None or plan.status or request_id not in self._legs_due:
            return False
        self._legs_due.discard(request_id)
        plan.request = dataclasses.replace(plan.request, output_tokens=output_tokens)
        now = self.clock.now()
        self.act_at(now)
        self.peers["router"].send(DecodeLeg(request_id, decode_unit, output_tokens, now))
        return True

    def cancel(self, request_id: int, reason: str) -> bool:
        """The request's client went away: tell every prefill and decode unit (the one holding
        it ends it ``cancelled``, now or when it reaches it); False if it had already ended."""
        plan = self.plans.get(request_id)
        if plan is None or plan.status:
            return False
        now = self.clock.now()
        self.act_at(now)
        for unit in self.units:
            self.peers[unit].send(RequestCancelled(request_id, reason, now))
        return True

    def outcomes(self, cursor: int) -> list[Outcome]:
        """Requests that ended after the first ``cursor`` ends, in the order they ended, up to one
        still awaiting its decode token times (the metrics fold each outcome once)."""
        out = []
        now_s = self.clock.now()
        for rid in self.finished[cursor:]:
            p = self.plans[rid]
            if p.awaits_schedule(now_s):
                break
            r = p.request
            out.append(Outcome(rid, p.status, p.reason, r.prompt_tokens, r.output_tokens,
                               r.arrival_s, p.prefill_unit, p.prefill_start_s, p.first_token_s,
                               p.decode_unit, p.kv_bytes, p.transfer_s, tuple(p.decode_times_s),
                               p.end_s, p.preemptions))
        return out

    def close(self) -> int:
        """Stop taking arrivals and tell the collector how many came in; returns that number."""
        if not self.closed:
            self.closed = True
            self.peers["collector"].send(ArrivalsDone(len(self.plans), sent_s=self.clock.now()))
        return len(self.plans)

    # -- messages from the cluster ----------------------------------------------------------
    def _touch(self, plan: TokenPlan) -> None:
        plan.version += 1
        event = self._changed.get(plan.request.request_id)
        if event is not None:
            event.set()

    def _on_first(self, msg: FirstTokenPlanned) -> None:
        plan = self.plans[msg.request_id]
        plan.prefill_unit, plan.prefill_start_s = msg.prefill_unit, msg.prefill_start_s
        plan.first_token_s, plan.cached_tokens = msg.first_token_s, msg.cached_tokens
        self._touch(plan)

    def _on_joined(self, msg: DecodeJoined) -> None:
        plan = self.plans[msg.request_id]
        plan.decode_unit, plan.kv_bytes = msg.decode_unit, msg.kv_bytes
        plan.transfer_s = (msg.transfer_start_s, msg.transfer_end_s)
        self._touch(plan)

    def _on_schedule(self, msg: TokenSchedule) -> None:
        """Decode token times, with the unit that makes them (a plan with decode tokens always
        names its decode unit, whether its ``DecodeJoined`` came or not)."""
        for rid in msg.request_ids:
            plan = self.plans[rid]
            plan.decode_unit = plan.decode_unit or msg.decode_unit
            plan.replan(msg.sent_s, msg.times_s)
            self._touch(plan)

    def _on_ended(self, msg: RequestEnded) -> None:
        """The request's end, forwarded by the collector. On the ray engine it can overtake its
        units' own notices (sent straight from the units): its records name the units and the
        first token then, so the tokens released at the end count on the unit that made them."""
        plan = self.plans[msg.request_id]
        if plan.status:
            return  # a redone request: its first end stands, as in the collector
        self._first_from(plan, msg.records)
        plan.decode_unit = plan.decode_unit or next(
            (r.decode_unit.name for r in reversed(msg.records) if isinstance(r, DecodeRouting)), "")
        plan.status, plan.reason, plan.end_s = msg.status, msg.reason, msg.sent_s
        plan.preemptions = sum(r.preemptions for r in msg.records if isinstance(r, DecodeRecord))
        self.finished.append(msg.request_id)
        self._touch(plan)

    @staticmethod
    def _first_from(plan: TokenPlan, records: tuple[Any, ...]) -> None:
        """The prefill unit and first token from the end's records, if its
        ``FirstTokenPlanned`` has not come (it is the same unit's record of the same batch)."""
        routed = [r.prefill_unit.name for r in records if isinstance(r, PrefillRouting)]
        prefilled = [r for r in records if isinstance(r, PrefillRecord)]
        if plan.first_token_s is not None or not routed or not prefilled:
            return
        plan.prefill_unit, plan.prefill_start_s = routed[-1], prefilled[-1].prefill_start_s
        plan.first_token_s = prefilled[-1].first_token_s
        plan.cached_tokens = prefilled[-1].cached_tokens or 0

    # -- results ----------------------------------------------------------------------------
    def arrivals_end_s(self) -> float:
        """Emu time of the latest arrival so far."""
        return self._last_arrival_s

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "submitted": len(self.plans), "total": len(self.plans)}

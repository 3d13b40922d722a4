"""Router policies: where a request's prefill runs and where its decode runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.messages import Request
from disagg.cluster.prefix_cache import leading_overlap
from disagg.policies.base import (
    PolicyContext,
    Reject,
    Route,
    RouterPolicy,
    RouterView,
    UnitView,
    Wait,
)
from disagg.policies.registry import Registry

ROUTERS: Registry[RouterPolicy] = Registry("router", RouterPolicy)


def decode_kv_need(request: Request, context: PolicyContext) -> float:
    """KV bytes a decode unit reserves for ``request``: prompt plus all output tokens."""
    return float(kv_bytes(request.prompt_tokens + request.output_tokens, context.model))


def decode_candidates(request: Request, view: RouterView, context: PolicyContext) -> list[UnitView]:
    """Decode units that are up and (as last reported) have KV room for the request."""
    need = decode_kv_need(request, context)
    # kv_free_bytes spelt out: once per decode unit per placement
    return [u for u in view.decode if u.up and u.kv_capacity_bytes - u.kv_used_bytes >= need]


def prefer_conversation(request: Request, candidates: list[UnitView]) -> list[UnitView]:
    """The decode candidates whose view holds the most of the request's leading prompt blocks
    (the unit already holding the conversation's earlier turns, with ``decode_keep``); all of
    them when none holds any."""
    hashes = request.prefix_hashes
    if not hashes:
        return candidates
    # one pass, no list of overlaps, max() and filtering (once per placement)
    best, chosen = 0, candidates
    for u in candidates:
        n = leading_overlap(hashes, u.cached_blocks)
        if n > best:
            best, chosen = n, [u]
        elif n == best and n:
            chosen.append(u)
    return chosen


@ROUTERS.register("round_robin")
@dataclass
class RoundRobin:
    """Cycle through the units that are up, ignoring load (decode: skipping units without room)."""

    context: PolicyContext
    _next_prefill: int = field(default=0, init=False)
    _next_decode: int = field(default=0, init=False)

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        if not up:
            return Reject("no_prefill_unit_up")
        unit = up[self._next_prefill % len(up)]
        self._next_prefill += 1
        return Route(unit.name)

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        if not any(u.up for u in view.decode):
            return Reject("no_decode_unit_up")
        need = decode_kv_need(request, self.context)
        if all(u.kv_capacity_bytes < need for u in view.decode):
            return Reject("kv_exceeds_decode_capacity")
        candidates = decode_candidates(request, view, self.context)
        if not candidates:
            return Wait()
        unit = candidates[self._next_decode % len(candidates)]
        self._next_decode += 1
        return Route(unit.name)

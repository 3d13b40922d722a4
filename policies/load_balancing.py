"""Load-balancing router policies: random, least-loaded, power of two choices, KV-aware."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.messages import Request
from disagg.policies.base import (
    PolicyContext,
    Reject,
    Route,
    RouterView,
    UnitView,
    Wait,
)
from disagg.policies.router import (
    ROUTERS,
    decode_candidates,
    decode_kv_need,
    prefer_conversation,
)


def decode_fallback(request: Request, view: RouterView, context: PolicyContext) -> Reject | Wait:
    """Why no decode unit was chosen: none up, the request can never fit, or none has room now."""
    if not any(u.up for u in view.decode):
        return Reject("no_decode_unit_up")
    if all(u.kv_capacity_bytes < decode_kv_need(request, context) for u in view.decode):
        return Reject("kv_exceeds_decode_capacity")
    return Wait()


def _least(units: list[UnitView]) -> UnitView:
    return min(units, key=lambda u: (u.outstanding_tokens, u.running_requests, u.name))


def _kv_best(units: list[UnitView]) -> UnitView:
    """The unit with the most KV headroom, then the smallest batch, then the last name."""
    if len(units) == 1:  # (often: the one unit holding the conversation) no key to build
        return units[0]
    # max(units, key=...) spelt out, kv_free_bytes inline (once per placement): no key function
    # call per unit
    best, best_key = units[0], None
    for u in units:
        key = (u.kv_capacity_bytes - u.kv_used_bytes, -u.running_requests, u.name)
        if best_key is None or key > best_key:
            best, best_key = u, key
    return best


def _least_decode(units: list[UnitView]) -> UnitView:
    """The decode unit with the least decode work left (tokens still to generate), then the
    smallest running batch: load balancing, blind to KV memory beyond "it fits"."""
    return min(units, key=lambda u: (u.queued_tokens, u.running_requests, u.name))


@dataclass
class _Base:
    context: PolicyContext

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        """Decode placement among units with KV room: the least decode work left."""
        candidates = decode_candidates(request, view, self.context)
        if not candidates:
            return decode_fallback(request, view, self.context)
        return Route(_least_decode(candidates).name)


@ROUTERS.register("random")
@dataclass
class RandomRouter(_Base):
    """A uniformly random prefill unit that is up; decode on a random unit with KV room."""

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        if not up:
            return Reject("no_prefill_unit_up")
        return Route(up[int(self.context.rng.integers(len(up)))].name)

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        candidates = decode_candidates(request, view, self.context)
        if not candidates:
            return decode_fallback(request, view, self.context)
        return Route(candidates[int(self.context.rng.integers(len(candidates)))].name)


@ROUTERS.register("least_loaded")
@dataclass
class LeastLoaded(_Base):
    """The prefill unit with the fewest outstanding tokens (queued + in progress)."""

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        return Route(_least(up).name) if up else Reject("no_prefill_unit_up")


@ROUTERS.register("power_of_two")
@dataclass
class PowerOfTwo(_Base):
    """Two random prefill units; the one with fewer outstanding tokens (Mitzenmacher)."""

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        if not up:
            return Reject("no_prefill_unit_up")
        picks = self.context.rng.choice(len(up), size=min(2, len(up)), replace=False)
        return Route(_least([up[int(i)] for i in picks]).name)


@ROUTERS.register("kv_aware")
@dataclass
class KvAware(_Base):
    """Least-loaded prefill; decode: first the units already holding the conversation (most
    leading prompt blocks kept, ``prefer_conversation``), then the most KV headroom, then the
    smallest batch — memory-driven placement, where the load balancers place by decode work
    left."""

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        return Route(_least(up).name) if up else Reject("no_prefill_unit_up")

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        candidates = decode_candidates(request, view, self.context)
        if not candidates:
            return decode_fallback(request, view, self.context)
        return Route(_kv_best(prefer_conversation(request, candidates)).name)

"""Cache-aware prefill routing: score prefill units by prefix overlap against load.

The approach of NVIDIA Dynamo's KV router and llm-d's prefix-aware scorer: a unit that already
holds a request's leading prompt blocks prefills it faster, but piling every request of a shared
prefix onto one unit overloads it, so overlap is traded against load. Here the cost of unit u is

    cost(u) = outstanding_tokens(u) - weight x cached_tokens(u)

(tokens, lower wins): the work the unit holds (queued + in progress, as last reported plus the
router's own assignments since) minus ``weight`` times the prompt tokens its prefix cache would
serve, from the router's possibly stale view of the unit's cached blocks. ``weight`` 0 is
least-loaded; 1 counts a cached token as one token of queued work saved; larger values chase hits
harder. Decode placement is ``kv_aware``'s (the conversation's unit first, then KV headroom).
"""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.messages import PREFIX_BLOCK_TOKENS, Request
from disagg.cluster.prefix_cache import cached_prefix_tokens, leading_overlap
from disagg.policies.base import Reject, Route, RouterView, UnitView
from disagg.policies.load_balancing import KvAware
from disagg.policies.router import ROUTERS


def prefix_cost(request: Request, unit: UnitView, weight: float) -> float:
    """Outstanding tokens of ``unit`` minus ``weight`` x the request's tokens it has cached."""
    hit = leading_overlap(request.prefix_hashes, unit.cached_blocks)
    if not hit:  # nothing cached: the same value as the formula, without computing 0 tokens
        return float(unit.outstanding_tokens)
    return unit.outstanding_tokens - weight * cached_prefix_tokens(request.prompt_tokens, hit)


@ROUTERS.register("prefix_aware")
@dataclass
class PrefixAware(KvAware):
    """The prefill unit with the lowest :func:`prefix_cost` (ties: fewer outstanding tokens, then
    name); decode as ``kv_aware``."""

    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1e6:
            raise ValueError(f"parameter 'weight': value {self.weight} is not in [0, 1e6]")

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        best: tuple[float, int, str] | None = None  # the first unit with the lowest key wins
        hashes, weight = request.prefix_hashes, self.weight
        most = max(0, request.prompt_tokens - 1)  # cached tokens at most (cached_prefix_tokens)
        reach = weight * most  # the most a cache can take off a unit's cost
        for u in view.prefill:
            if u.up:
                # prefix_cost, cached_prefix_tokens and outstanding_tokens spelt out (once per
                # prefill unit per request): one call, not five
                outstanding = u.queued_tokens + u.running_tokens
                if best is not None and outstanding - reach > best[0]:
                    # even a full hit leaves this unit dearer than the best (float subtraction
                    # and multiplication are monotonic): its overlap is not looked at (about
                    # half the units on the Mooncake trace)
                    continue
                hit = leading_overlap(hashes, u.cached_blocks)
                cost = (outstanding - weight * min(hit * PREFIX_BLOCK_TOKENS, most) if hit
                        else float(outstanding))
                key = (cost, outstanding, u.name)
                if best is None or key < best:
                    best = key
        return Reject("no_prefill_unit_up") if best is None else Route(best[2])

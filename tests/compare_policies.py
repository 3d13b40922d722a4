"""Router policies used only by the comparison tests (named by dotted path ``compare_policies.X``)."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.messages import Request
from disagg.policies.base import PolicyContext, Reject, Route, RouterView, Wait
from disagg.policies.router import RoundRobin


@dataclass
class FirstUnit:
    """Every prefill on the first unit that is up (a deliberately bad router); decode round-robin."""

    context: PolicyContext

    def __post_init__(self) -> None:
        self._decode = RoundRobin(self.context)

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        return Route(up[0].name) if up else Reject("no_prefill_unit_up")

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        return self._decode.choose_decode(request, view)

"""SLO-aware routing with admission control.

On arrival: predict the request's TTFT on every prefill unit (queue + prefill time from the
performance model) and its TPOT on every decode unit with the request added; route to the
prefill unit with the earliest first token among those meeting the TTFT target (times
``ttft_margin``); if none can, or no decode unit can meet the TPOT target, reject with
``slo_unattainable``. After prefill: the decode unit with the lowest predicted TPOT.
"""

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
from disagg.policies.load_balancing import decode_fallback
from disagg.policies.predict import predicted_first_token_s, predicted_tpot_s
from disagg.policies.router import ROUTERS, decode_candidates


@ROUTERS.register("slo_aware")
@dataclass
class SloAware:
    """Earliest predicted first token among units that meet the SLO; reject when none can."""

    context: PolicyContext
    ttft_margin: float = 1.0  # admit if predicted TTFT <= margin x target
    admission_control: bool = True

    def __post_init__(self) -> None:
        if self.ttft_margin <= 0:
            raise ValueError("ttft_margin must be > 0")

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject:
        up = [u for u in view.prefill if u.up]
        if not up:
            return Reject("no_prefill_unit_up")
        first = {u.name: predicted_first_token_s(request, u, view.now_s, self.context) for u in up}
        best = min(up, key=lambda u: (first[u.name], u.name))
        if not self.admission_control:
            return Route(best.name)
        ttft = first[best.name] - request.arrival_s
        if ttft > request.ttft_slo_s * self.ttft_margin:
            return Reject("slo_unattainable")
        empty = UnitView("empty", "decode")
        if predicted_tpot_s(request, empty, self.context) > request.tpot_slo_s:
            return Reject("slo_unattainable")  # too slow even alone on a decode unit
        return Route(best.name)

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject:
        candidates = decode_candidates(request, view, self.context)
        if not candidates:
            return decode_fallback(request, view, self.context)
        best = min(candidates, key=lambda u: (predicted_tpot_s(request, u, self.context), u.name))
        return Route(best.name)

"""Predictions a policy can make from a (possibly stale) unit view and the performance models.

TTFT on a prefill unit: the batch in progress ends at ``free_at_s``; then the queued tokens and the
request's own prompt are prefilled (modeled as one more batch of the queue's mean prompt length per
queued request, plus the request); TTFT = that end - the request's arrival.
TPOT on a decode unit: the step time with the request added to the running batch at the unit's
current context (``running_tokens``), or infinity when the KV does not fit as last reported.
"""

from __future__ import annotations

from disagg.cluster.hardware.perf import decode_step_time, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.messages import Request
from disagg.policies.base import PolicyContext, UnitView


def predicted_first_token_s(request: Request, unit: UnitView, now_s: float,
                            context: PolicyContext) -> float:
    """Emu time at which ``request``'s first token would come out of ``unit``."""
    start = max(now_s, unit.free_at_s)
    prompts = [request.prompt_tokens]
    if unit.queued_requests > 0:
        mean = max(1, unit.queued_tokens // unit.queued_requests)
        prompts += [mean] * unit.queued_requests
    work = prefill_time(prompts, context.model, context.prefill_hw, context.prefill_chips).seconds
    return start + work


def predicted_ttft_s(request: Request, unit: UnitView, now_s: float, context: PolicyContext) -> float:
    """Predicted time to first token of ``request`` on ``unit`` (seconds from its arrival)."""
    return predicted_first_token_s(request, unit, now_s, context) - request.arrival_s


def predicted_tpot_s(request: Request, unit: UnitView, context: PolicyContext) -> float:
    """Predicted time per output token on a decode unit with ``request`` added (inf if no room)."""
    need = float(kv_bytes(request.prompt_tokens + request.output_tokens, context.model))
    if need > unit.kv_free_bytes:
        return float("inf")
    batch = unit.running_requests + unit.queued_requests + 1
    ctx = unit.running_tokens + request.prompt_tokens
    return decode_step_time(batch, ctx, context.model, context.decode_hw, context.decode_chips)

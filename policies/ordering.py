"""Prefill batching policies that reorder the queue: earliest deadline first, and shortest prompt
first with an aging bound against starvation."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.policies.base import Batch, QueuedPrefill, WaitUntil
from disagg.policies.batching import PREFILL_BATCHING, check_budget, take_fcfs


@PREFILL_BATCHING.register("edf")
@dataclass(frozen=True)
class EarliestDeadlineFirst:
    """Batch in order of TTFT deadline (arrival + the request's TTFT target), across SLO classes."""

    max_batch_tokens: int = 8_192
    max_batch_requests: int = 256

    def __post_init__(self) -> None:
        check_budget(self.max_batch_tokens, self.max_batch_requests)

    def form_batch(self, queue: tuple[QueuedPrefill, ...], now_s: float) -> Batch | WaitUntil:
        ordered = tuple(sorted(queue, key=lambda q: (q.request.arrival_s + q.request.ttft_slo_s,
                                                     q.queued_s, q.request.request_id)))
        return take_fcfs(ordered, self.max_batch_tokens, self.max_batch_requests)


@PREFILL_BATCHING.register("shortest_prompt_first")
@dataclass(frozen=True)
class ShortestPromptFirst:
    """Shortest prompts first; a request queued for ``aging_s`` or more goes ahead of all younger
    ones (oldest first), so no request waits much beyond ``aging_s`` plus the aged work ahead."""

    max_batch_tokens: int = 8_192
    max_batch_requests: int = 256
    aging_s: float = 1.0

    def __post_init__(self) -> None:
        check_budget(self.max_batch_tokens, self.max_batch_requests)
        if self.aging_s <= 0:
            raise ValueError("aging_s must be > 0")

    def form_batch(self, queue: tuple[QueuedPrefill, ...], now_s: float) -> Batch | WaitUntil:
        aged = sorted((q for q in queue if now_s - q.queued_s >= self.aging_s),
                      key=lambda q: (q.queued_s, q.request.request_id))
        young = sorted((q for q in queue if now_s - q.queued_s < self.aging_s),
                       key=lambda q: (q.request.prompt_tokens, q.queued_s, q.request.request_id))
        return take_fcfs(tuple(aged + young), self.max_batch_tokens, self.max_batch_requests)

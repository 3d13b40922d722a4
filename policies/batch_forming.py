"""Batch-forming prefill: wait (up to ``max_wait_s``) to fill a token budget, trading TTFT for
prefill efficiency; release early when the oldest request's TTFT slack runs low."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.hardware.prefill import prefill_time
from disagg.policies.base import Batch, PolicyContext, QueuedPrefill, WaitUntil
from disagg.policies.batching import PREFILL_BATCHING, check_budget, take_fcfs


@PREFILL_BATCHING.register("batch_forming")
@dataclass(frozen=True)
class BatchForming:
    """FCFS batches of at least ``min_batch_tokens`` (default: the budget), or whatever is queued
    once the oldest request has waited ``max_wait_s`` or its slack (TTFT target minus time waited
    minus the batch's predicted prefill time) falls below ``min_slack_s``."""

    context: PolicyContext
    max_batch_tokens: int = 8_192
    max_batch_requests: int = 256
    min_batch_tokens: int | None = None
    max_wait_s: float = 0.05
    min_slack_s: float = 0.0

    def __post_init__(self) -> None:
        check_budget(self.max_batch_tokens, self.max_batch_requests)
        if self.max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")

    def form_batch(self, queue: tuple[QueuedPrefill, ...], now_s: float) -> Batch | WaitUntil:
        batch = take_fcfs(queue, self.max_batch_tokens, self.max_batch_requests)
        chosen = [q for q in queue if q.request.request_id in set(batch.request_ids)]
        tokens = sum(q.request.prompt_tokens for q in chosen)
        target = self.min_batch_tokens or self.max_batch_tokens
        if tokens >= target or len(chosen) >= self.max_batch_requests or len(chosen) < len(queue):
            return batch
        oldest = queue[0]
        release = oldest.queued_s + self.max_wait_s
        run_s = prefill_time([q.request.prompt_tokens for q in chosen], self.context.model,
                             self.context.prefill_hw, self.context.prefill_chips).seconds
        deadline = oldest.request.arrival_s + oldest.request.ttft_slo_s
        latest_start = deadline - run_s - self.min_slack_s
        release = min(release, latest_start)
        return batch if release <= now_s + TIME_EPS_S else WaitUntil(release)

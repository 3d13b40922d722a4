"""Batching policies inside a unit: prefill batch formation and decode admission."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.policies.base import (
    Batch,
    DecodeAdmissionPolicy,
    DecodeState,
    PendingDecode,
    PrefillBatchingPolicy,
    QueuedPrefill,
    WaitUntil,
)
from disagg.policies.registry import Registry

PREFILL_BATCHING: Registry[PrefillBatchingPolicy] = Registry("prefill_batching", PrefillBatchingPolicy)
DECODE_ADMISSION: Registry[DecodeAdmissionPolicy] = Registry("decode_admission", DecodeAdmissionPolicy)


def check_budget(max_batch_tokens: int, max_batch_requests: int) -> None:
    """Reject a batch budget that could never hold a request."""
    if max_batch_tokens < 1 or max_batch_requests < 1:
        raise ValueError("max_batch_tokens and max_batch_requests must be >= 1")


def take_fcfs(queue: tuple[QueuedPrefill, ...], max_tokens: int, max_requests: int) -> Batch:
    """Queue-order prefix within the token and request budgets (a lone oversized prompt runs)."""
    ids: list[int] = []
    tokens = 0
    for item in queue:
        n = item.request.prompt_tokens
        if ids and (tokens + n > max_tokens or len(ids) >= max_requests):
            break
        ids.append(item.request.request_id)
        tokens += n
        if tokens >= max_tokens:
            break
    return Batch(tuple(ids))


@PREFILL_BATCHING.register("fcfs")
@dataclass(frozen=True)
class FcfsBatching:
    """First come, first served, under a token budget (and an optional request cap)."""

    max_batch_tokens: int = 8_192
    max_batch_requests: int = 256

    def __post_init__(self) -> None:
        check_budget(self.max_batch_tokens, self.max_batch_requests)

    def form_batch(self, queue: tuple[QueuedPrefill, ...], now_s: float) -> Batch | WaitUntil:
        return take_fcfs(queue, self.max_batch_tokens, self.max_batch_requests)


@DECODE_ADMISSION.register("fcfs")
@dataclass(frozen=True)
class FcfsAdmission:
    """Admit pending requests in arrival order while the batch and KV memory have room."""

    max_batch_requests: int = 256

    def __post_init__(self) -> None:
        if self.max_batch_requests < 1:
            raise ValueError("max_batch_requests must be >= 1")

    def admit(self, pending: tuple[PendingDecode, ...], state: DecodeState) -> tuple[int, ...]:
        room = self.max_batch_requests - state.running
        free = state.kv_capacity_bytes - state.kv_used_bytes
        admitted: list[int] = []
        for p in pending:
            if room <= 0 or p.kv_bytes > free:
                break
            admitted.append(p.request.request_id)
            room -= 1
            free -= p.kv_bytes
        return tuple(admitted)

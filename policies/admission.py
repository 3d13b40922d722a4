"""TPOT-aware decode admission: grow the running batch only while the predicted step time stays
within the tightest TPOT target among the running and admitted requests."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.hardware.perf import decode_step_time
from disagg.policies.base import DecodeState, PendingDecode, PolicyContext
from disagg.policies.batching import DECODE_ADMISSION


@DECODE_ADMISSION.register("tpot_aware")
@dataclass(frozen=True)
class TpotAware:
    """FCFS admission capped by KV memory, ``max_batch_requests`` and the TPOT targets
    (``tpot_fraction`` x the tightest target; an empty batch always admits one request)."""

    context: PolicyContext
    max_batch_requests: int = 256
    tpot_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.max_batch_requests < 1 or self.tpot_fraction <= 0:
            raise ValueError("max_batch_requests must be >= 1 and tpot_fraction > 0")

    def admit(self, pending: tuple[PendingDecode, ...], state: DecodeState) -> tuple[int, ...]:
        free = state.kv_capacity_bytes - state.kv_used_bytes
        running, ctx = state.running, state.context_tokens
        tightest = state.tightest_tpot_s
        admitted: list[int] = []
        for p in pending:
            if running >= self.max_batch_requests or p.kv_bytes > free:
                break
            target = min(tightest, p.request.tpot_slo_s) * self.tpot_fraction
            step = decode_step_time(running + 1, ctx + p.request.prompt_tokens,
                                    self.context.model, self.context.decode_hw,
                                    self.context.decode_chips)
            if running > 0 and step > target:
                break
            admitted.append(p.request.request_id)
            running, ctx, free = running + 1, ctx + p.request.prompt_tokens, free - p.kv_bytes
            tightest = min(tightest, p.request.tpot_slo_s)
        return tuple(admitted)

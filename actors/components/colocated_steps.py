"""How a colocated unit's decodes step, and its vLLM-v0 iteration plan.

Decodes: one token per iteration (plain decoding) or the accepted tokens of a speculative step
drawn per request (``spec_steps.py``); in a mixed iteration the decodes' speculation adds
``spec_step - plain step`` of the decoding batch to the iteration (the draft passes and the extra
verify tokens; the prefill chunks' marginal cost is the plain one). Mixed into
:class:`~disagg.actors.components.colocated.ColocatedUnit`.

vLLM v0's scheduler (``plan_prefill_first``): while prompts wait, an iteration runs only
prefills — whole prompts, first-come first-served while they fit the token budget (the first
always runs, as v0 requires max_num_batched_tokens >= the model's context), ``max_running``
and the free KV — and every running decode stalls; decodes run when no prompt can start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from disagg.actors.components.spec_steps import SpecPlan, SpecStepper
from disagg.actors.components.speed import SpeedSchedule
from disagg.cluster.hardware.perf import decode_step_time, decode_step_times
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.policies.chunked_prefill import IterationPlan, WaitingPrefill


def plan_prefill_first(queue: tuple[WaitingPrefill, ...], decodes: int, token_budget: int,
                       max_running: int, kv_free_bytes: float) -> IterationPlan:
    """vLLM v0: the whole prompts of the next prefill-only iteration for ``queue`` (oldest
    first) next to ``decodes`` running decodes; empty when none can start (decodes run)."""
    running = decodes
    chunks: list[tuple[int, int]] = []
    tokens = 0
    for w in queue:
        if running >= max_running or w.kv_bytes > kv_free_bytes:
            break
        if chunks and tokens + w.tokens_left > token_budget:
            break
        chunks.append((w.request_id, w.tokens_left))
        tokens += w.tokens_left
        running += 1
        kv_free_bytes -= w.kv_bytes
    return IterationPlan(tuple(chunks))


class ColocatedSteps:
    """The colocated unit's decode stepping (plain or speculative)."""

    model: ModelSpec
    hw: HardwareProfile
    chips: int
    t: float
    decoding: dict[int, Any]
    speed: SpeedSchedule
    spec: SpecStepper | None
    _spec_plan: SpecPlan | None
    _plan_ids: tuple[int, ...]
    _decode_fit: Callable[[np.ndarray], int]  # the unit's (annotation only)

    def _decode_bounds(self) -> np.ndarray:
        """End times (emu s) of the next decode-only iterations, up to the first finish."""
        decs = list(self.decoding.values())
        ctx0 = sum(d.context for d in decs)
        factor = self.speed.factor_at(self.t)
        if self.spec is not None:
            plan = self.spec.plan([d.request for d in decs], [d.left for d in decs], ctx0, factor)
            fit = max(1, self._decode_fit(plan.gained))  # step 0 fits: _make_room saw to it
            self._spec_plan = SpecPlan(plan.gained[:fit], plan.step_s[:fit])
            self._plan_ids = tuple(self.decoding)
            return self.t + np.cumsum(self._spec_plan.step_s)
        b, steps = len(decs), min(d.left for d in decs)
        steps = max(1, self._decode_fit(np.ones((steps, b), np.int64)))
        ctx = ctx0 + b * np.arange(steps, dtype=float)
        return self.t + np.cumsum(factor * decode_step_times(b, ctx, self.model, self.hw,
                                                             self.chips))

    def _spec_extra_s(self) -> float:
        """Seconds speculation adds to a mixed iteration's decodes (0 when plain); plans the
        decodes' one speculative step."""
        if self.spec is None or not self.decoding:
            return 0.0
        decs = list(self.decoding.values())
        ctx = sum(d.context for d in decs)
        self._spec_plan = self.spec.plan([d.request for d in decs], [d.left for d in decs], ctx)
        self._plan_ids = tuple(self.decoding)
        plain = decode_step_time(len(decs), ctx, self.model, self.hw, self.chips)
        return max(0.0, float(self._spec_plan.step_s[0]) - plain)

    def _decode_gained(self, ran: Sequence[Any], steps: int) -> dict[int, int]:
        """Tokens each decode in ``ran`` gained in the first ``steps`` planned iterations."""
        ids = [d.request.request_id for d in ran]
        if self.spec is None or self._spec_plan is None:
            return dict.fromkeys(ids, steps)
        assert set(ids) <= set(self._plan_ids), "the decodes that ran were the planned ones"
        self.spec.commit([self.decoding[rid].request for rid in self._plan_ids], steps)
        gained = self._spec_plan.gained[:steps].sum(axis=0)
        self._spec_plan = None
        by_id = dict(zip(self._plan_ids, gained.tolist(), strict=True))
        return {rid: int(by_id[rid]) for rid in ids}

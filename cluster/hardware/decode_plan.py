"""Step times of a decode unit's next iterations of a fixed batch (plain decoding): bit for bit
:func:`~disagg.cluster.hardware.perf.decode_step_times` over the planned contexts, with the terms
that depend on the batch size alone cached per unit type and the per-step arithmetic done in
place. The decode unit plans with it once per batch change (``decode_steps.py``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.hardware.perf import (
    UnitMemos,
    _attention,
    concurrency_share,
    layers_fixed_s,
    peak_flops,
    pipeline_latency_s,
    tp_ring_s,
    unit_memo,
    weights_read_bytes,
)
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec

_PLAN_CACHE: UnitMemos = {}  # batch size -> the batch's terms per unit type


def _plan_terms(batch_size: int, model: ModelSpec, hw: HardwareProfile,
                chips: int) -> tuple[float, ...]:
    """The terms of :func:`decode_step_times` that depend on the batch size alone, computed by
    the same operations (so the step times are bit for bit the same), cached per unit type."""
    memo = unit_memo(_PLAN_CACHE, model, hw, chips)
    terms: tuple[float, ...] | None = memo.get(batch_size)
    if terms is None:
        b = np.asarray(batch_size, dtype=np.float64)
        share = concurrency_share(b, hw)
        compute_div = chips * peak_flops(hw, model) * hw.compute_efficiency
        if hw.decode_model == "wafer_pipeline":
            floor = pipeline_latency_s(model, hw, chips) * share
            rest = (float(floor), float(hw.step_overhead_s), 0.0, 0.0)
        else:
            fixed = hw.step_overhead_s + layers_fixed_s(model, hw, chips)
            rest = (float(weights_read_bytes(b, model)),
                    float(chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency),
                    float(fixed * share), float(tp_ring_s(b, model, hw, chips)))
        terms = memo[batch_size] = (float(2.0 * model.active_params * b),
                                        4.0 * model.q_heads * model.head_dim, compute_div, *rest)
    return terms


def _attended_plan(batch_size: int, context_tokens: int, steps: int,
                   model: ModelSpec) -> NDArray[np.float64]:
    """:func:`_attention` at each of ``steps`` steps of a fixed batch from ``context_tokens``:
    without sliding windows whole numbers, made exactly by one ``arange`` (x + 0 x window is x)."""
    if model.sliding_window_layers:
        x = np.arange(steps, dtype=np.float64)
        x *= batch_size
        x += context_tokens
        return _attention(np.asarray(batch_size, dtype=np.float64), x, model)
    step, first = batch_size * model.layers, context_tokens * model.layers
    if step == 0:
        return np.full(steps, float(first))
    return np.arange(first, first + step * steps, step, dtype=np.float64)[:steps]


def decode_plan_times(batch_size: int, context_tokens: int, steps: int, model: ModelSpec,
                      hw: HardwareProfile, chips: int) -> NDArray[np.float64]:
    """Seconds of each of the next ``steps`` plain decode iterations of a fixed batch of
    ``batch_size`` sequences holding ``context_tokens`` in all (one more per sequence per step):
    bit for bit ``decode_step_times(batch_size, context_tokens + batch_size x arange(steps))``,
    with the batch's terms cached and the per-step arithmetic done in place. On a wafer whose
    last step's compute is under the latency floor every step is the floor (compute only grows
    with the context), without computing them."""
    flops_b, flops_attn, compute_div, *rest = _plan_terms(batch_size, model, hw, chips)
    wafer = hw.decode_model == "wafer_pipeline"
    if wafer and steps > 0 and not model.sliding_window_layers:
        last = float((context_tokens + batch_size * (steps - 1)) * model.layers)
        if (last * flops_attn + flops_b) / compute_div <= rest[0]:
            x = np.empty(steps)
            x.fill(rest[0] + rest[1])  # np.full's work, without its Python wrapper
            return x
    x = _attended_plan(batch_size, context_tokens, steps, model)
    memory = None if wafer else x * model.kv_bytes_per_token_per_layer
    x *= flops_attn
    x += flops_b
    x /= compute_div  # compute s
    if memory is None:
        np.maximum(x, rest[0], out=x)  # the latency floor
        x += rest[1]  # the step overhead
        return x
    weights_read, memory_div, fixed, ring = rest
    memory += weights_read
    memory /= memory_div
    np.maximum(x, memory, out=x)
    x += fixed
    x += ring
    return x

"""Performance models: pure functions of a batch, a model and a unit, returning named results.

Roofline (Trainium, GPUs): time = max(FLOPs / (chips x peak x compute_efficiency),
bytes moved / (chips x bandwidth x memory_efficiency)) + step overhead.
Wafer pipeline (CS-3 decode): time = max(layers x layer latency + (wafers - 1) x hop latency,
FLOPs / (wafers x peak x compute_efficiency)) + step overhead; weights stay in SRAM.

FLOPs (calibration.md): 2 x active params per token for the linear layers, plus attention
4 x layers x q_heads x head_dim per token per context token; a causal prefill of S tokens costs
2 N S + 2 L n_q d S^2. All times in seconds, sizes in bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec


@dataclass(frozen=True)
class StepTime:
    """Modeled duration of one prefill batch or decode step and what bounds it."""

    seconds: float
    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def bound(self) -> str:
        """"compute" or "memory" (for a wafer pipeline, "memory" means the latency floor)."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class FitCheck:
    """Whether one model copy plus a KV working set fits in a unit's memory."""

    weight_bytes: float
    kv_bytes: float
    capacity_bytes: float

    @property
    def fits(self) -> bool:
        return self.weight_bytes + self.kv_bytes <= self.capacity_bytes

    @property
    def kv_capacity_bytes(self) -> float:
        """Memory left for KV once the weights are resident (may be negative)."""
        return self.capacity_bytes - self.weight_bytes


# id(model) -> (the model, kept alive so its id stays its own; tokens -> KV bytes)
_KV_BYTES_CACHE: dict[int, tuple[ModelSpec, dict[int, float]]] = {}
_KV_BYTES_CACHE_MODELS = 64  # models remembered before the cache starts over


def kv_bytes(tokens: ArrayLike, model: ModelSpec) -> NDArray[np.float64] | float:
    """KV-cache bytes for a sequence of ``tokens`` (sliding-window layers stop growing).

    A plain ``int`` of tokens is answered from a per-model cache (models are frozen)."""
    if type(tokens) is not int:
        return _kv_bytes(tokens, model)
    entry = _KV_BYTES_CACHE.get(id(model))
    if entry is None or entry[0] is not model:
        if len(_KV_BYTES_CACHE) >= _KV_BYTES_CACHE_MODELS:
            _KV_BYTES_CACHE.clear()
        entry = _KV_BYTES_CACHE[id(model)] = (model, {})
    value = entry[1].get(tokens)
    if value is None:
        value = entry[1][tokens] = _kv_bytes(tokens, model)  # type: ignore[assignment]
    return value


def _kv_bytes(tokens: ArrayLike, model: ModelSpec) -> NDArray[np.float64] | float:
    t = np.asarray(tokens, dtype=np.float64)
    full = model.layers - model.sliding_window_layers
    windowed = np.minimum(t, model.sliding_window_tokens) * model.sliding_window_layers
    out = model.kv_bytes_per_token_per_layer * (full * t + windowed)
    return float(out) if out.ndim == 0 else out


def peak_flops(hw: HardwareProfile, model: ModelSpec) -> float:
    """Dense peak FLOP/s per chip at the model's weight precision (FP8 for 1-byte weights)."""
    return hw.peak_flops_fp8 if model.weight_bytes_per_param <= 1 else hw.peak_flops_bf16


def prefill_flops(prompt_tokens: Sequence[int] | NDArray[np.int64], model: ModelSpec) -> float:
    """FLOPs of a causal prefill over each prompt in the batch."""
    s = np.asarray(prompt_tokens, dtype=np.float64)
    attn = 2.0 * model.layers * model.q_heads * model.head_dim * s * s
    return float(np.sum(2.0 * model.active_params * s + attn))


def prefill_time(
    prompt_tokens: Sequence[int] | NDArray[np.int64],
    model: ModelSpec,
    hw: HardwareProfile,
    chips: int,
) -> StepTime:
    """Duration of one prefill batch of the given prompt lengths on a unit of ``chips`` chips."""
    if len(prompt_tokens) == 0:
        raise ValueError("a prefill batch needs at least one prompt")
    compute = prefill_flops(prompt_tokens, model) / (
        chips * peak_flops(hw, model) * hw.compute_efficiency
    )
    moved = model.weight_bytes + float(np.sum(kv_bytes(np.asarray(prompt_tokens), model)))
    memory = moved / (chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency)
    overhead = hw.step_overhead_s
    return StepTime(max(compute, memory) + overhead, compute, memory, overhead)


def decode_step_times(
    batch_size: ArrayLike,
    context_tokens: ArrayLike,
    model: ModelSpec,
    hw: HardwareProfile,
    chips: int,
) -> NDArray[np.float64]:
    """Seconds per decode iteration, vectorised over (batch size, total context tokens) pairs.

    ``context_tokens`` is the sum over the batch of each sequence's current length.
    """
    b = np.asarray(batch_size, dtype=np.float64)
    ctx = np.asarray(context_tokens, dtype=np.float64)
    full = model.layers - model.sliding_window_layers
    win_ctx = np.minimum(ctx, b * model.sliding_window_tokens)
    attn_flops = 4.0 * model.q_heads * model.head_dim * (
        full * ctx + model.sliding_window_layers * win_ctx
    )
    flops = 2.0 * model.active_params * b + attn_flops
    compute = flops / (chips * peak_flops(hw, model) * hw.compute_efficiency)
    if hw.decode_model == "wafer_pipeline":
        floor = model.layers * hw.layer_latency_s + (chips - 1) * hw.hop_latency_s
        body = np.maximum(compute, floor)
    else:
        kv_read = model.kv_bytes_per_token_per_layer * (
            full * ctx + model.sliding_window_layers * win_ctx
        )
        memory = (model.weight_bytes + kv_read) / (
            chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency
        )
        body = np.maximum(compute, memory)
    return body + hw.step_overhead_s


def decode_step_time(
    batch_size: int, context_tokens: int, model: ModelSpec, hw: HardwareProfile, chips: int
) -> float:
    """Seconds for one decode iteration of ``batch_size`` sequences holding ``context_tokens``."""
    return float(decode_step_times(batch_size, context_tokens, model, hw, chips))


def fit_check(model: ModelSpec, hw: HardwareProfile, chips: int, kv_tokens: int = 0) -> FitCheck:
    """Weights of one model copy plus KV for ``kv_tokens`` tokens against the unit's memory."""
    return FitCheck(
        weight_bytes=model.weight_bytes,
        kv_bytes=float(kv_bytes(kv_tokens, model)),
        capacity_bytes=chips * hw.memory_bytes,
    )

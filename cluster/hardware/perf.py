"""Performance models: pure functions of a batch, a model and a unit, returning named results.

Roofline hardware (Trainium, GPUs), a unit of n chips in one tensor-parallel group:

    step = max(FLOPs / (n x peak x compute_efficiency), bytes read / (n x bandwidth x
           memory_efficiency)) + layers x (layer_overhead + tp_layer_latency x log2 n +
           all-reduce bytes / interconnect) + step_overhead

The per-layer term is a fixed launch cost plus the two all-reduces a tensor-parallel layer needs:
a latency that grows with the number of ranks (log2 n, a tree) plus the activation bytes a ring
moves per chip,
2 x 2 (n - 1) / n x tokens x hidden x activation bytes. Mixture-of-experts models read the
weights of the experts the step's tokens activate: E (1 - (1 - k/E)^tokens) per layer on average.

Wafer pipeline (CS-3): weights stay in SRAM, the layers spread evenly over the wafers; one
token's latency through the pipeline is token_latency + sum over layers of (layer_latency +
layer_latency_per_gparam x layer size + the layer's FLOPs / the compute it gets) + (wafers - 1) x
hop_latency, where a layer gets its wafer's peak x pipeline_compute_efficiency / (layers per
wafer). Decode is max(compute, that floor x share(streams)); prefill is the
prompt's FLOPs at compute_efficiency plus one trip through the pipeline (its assumptions are in
docs/calibration.md).

share(streams) = max(1, streams / concurrency_free_streams) ** concurrency_exponent: how the
latency floor (wafer) or the fixed per-step part (roofline) grows with concurrent streams — an
explicit assumption, since nobody publishes CS-3 or Trainium batched-decode curves.

FLOPs (calibration.md): 2 x active params per token for the linear layers, plus attention
4 x layers x q_heads x head_dim per token per context token; a causal prefill of S tokens costs
2 N S + 2 L n_q d S^2. All times in seconds, sizes in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        value = entry[1][tokens] = _kv_bytes_of(tokens, model)
    return value


def _kv_bytes_of(tokens: int, model: ModelSpec) -> float:
    """:func:`_kv_bytes` of one count, in plain Python: the same float64 operations."""
    t = float(tokens)
    windowed = min(t, float(model.sliding_window_tokens)) * model.sliding_window_layers
    return model.kv_bytes_per_token_per_layer * (
        (model.layers - model.sliding_window_layers) * t + windowed)


def _kv_bytes(tokens: ArrayLike, model: ModelSpec) -> NDArray[np.float64] | float:
    t = np.asarray(tokens, dtype=np.float64)
    full = model.layers - model.sliding_window_layers
    windowed = np.minimum(t, model.sliding_window_tokens) * model.sliding_window_layers
    out = model.kv_bytes_per_token_per_layer * (full * t + windowed)
    return float(out) if out.ndim == 0 else out


def peak_flops(hw: HardwareProfile, model: ModelSpec) -> float:
    """Dense peak FLOP/s per chip at the model's weight precision (FP8 for 1-byte weights); a
    chip without FP8 (validation refuses FP8 weights on it) raises ValueError."""
    if model.weight_bytes_per_param > 1:
        return hw.peak_flops_bf16
    if hw.peak_flops_fp8 is None:
        raise ValueError(f"hardware {hw.name!r} has no FP8 compute for FP8 weights")
    return hw.peak_flops_fp8


def expected_experts(tokens: ArrayLike, model: ModelSpec) -> NDArray[np.float64] | float:
    """Expected distinct experts per layer that ``tokens`` tokens activate: E (1 - (1-k/E)^t),
    assuming each token picks its top-k experts uniformly and independently."""
    t = np.asarray(tokens, dtype=np.float64)
    if not model.experts:
        return 0.0 if t.ndim == 0 else np.zeros_like(t)
    e, k = float(model.experts), float(model.experts_per_token)
    out = e * (1.0 - (1.0 - k / e) ** t)
    return float(out) if out.ndim == 0 else out


def weights_read_bytes(tokens: ArrayLike, model: ModelSpec) -> NDArray[np.float64] | float:
    """Weight bytes a step over ``tokens`` tokens reads: all of a dense model; for an MoE model
    the shared weights plus the experts those tokens activate (bytes)."""
    if not model.experts:
        t = np.asarray(tokens, dtype=np.float64)
        return model.weight_bytes if t.ndim == 0 else np.full_like(t, model.weight_bytes)
    all_experts = model.layers * model.experts * model.expert_params
    shared = max(model.total_params - all_experts, 0.0)
    touched = model.layers * model.expert_params * expected_experts(tokens, model)
    return (shared + np.minimum(touched, all_experts)) * model.weight_bytes_per_param


def layers_fixed_s(model: ModelSpec, hw: HardwareProfile, chips: int) -> float:
    """Seconds per step of fixed per-layer costs: layers x (launch + collective latency x
    log2(chips))."""
    per_layer = hw.layer_overhead_s + hw.tp_layer_latency_s * float(np.log2(max(chips, 1)))
    return model.layers * per_layer


def tp_ring_s(tokens: ArrayLike, model: ModelSpec, hw: HardwareProfile,
              chips: int) -> NDArray[np.float64] | float:
    """Seconds per step the two ring all-reduces of each layer spend moving the activations of
    ``tokens`` tokens: 2 x 2 (n-1)/n x tokens x hidden x activation bytes / interconnect."""
    t = np.asarray(tokens, dtype=np.float64)
    ring = 4.0 * (chips - 1) / max(chips, 1) * t * model.hidden_size * hw.activation_bytes
    out = model.layers * ring / hw.interconnect_bytes_per_s
    return float(out) if np.ndim(out) == 0 else out


def layers_comm_s(tokens: ArrayLike, model: ModelSpec, hw: HardwareProfile,
                  chips: int) -> NDArray[np.float64] | float:
    """Seconds of per-layer fixed costs and tensor-parallel communication per step over
    ``tokens`` tokens."""
    return layers_fixed_s(model, hw, chips) + tp_ring_s(tokens, model, hw, chips)


def concurrency_share(streams: ArrayLike, hw: HardwareProfile) -> NDArray[np.float64]:
    """How much the decode latency floor (or fixed step part) grows with concurrent streams."""
    b = np.asarray(streams, dtype=np.float64)
    return np.maximum(1.0, b / hw.concurrency_free_streams) ** hw.concurrency_exponent


def pipeline_latency_s(model: ModelSpec, hw: HardwareProfile, wafers: int) -> float:
    """One token's trip through a wafer pipeline (seconds): per-token cost; per layer a fixed
    latency, a term per billion active parameters, and the layer's FLOPs (2 x its active
    parameters) over its share of the wafer's compute (layers spread evenly over ``wafers``);
    and the wafer-to-wafer hops."""
    per_layer = hw.layer_latency_s + hw.layer_latency_s_per_gparam * model.layer_active_params / 1e9
    if hw.pipeline_compute_efficiency > 0:
        layer_share = peak_flops(hw, model) * hw.pipeline_compute_efficiency * wafers / model.layers
        per_layer += 2.0 * model.layer_active_params / layer_share
    return hw.token_latency_s + model.layers * per_layer + (wafers - 1) * hw.hop_latency_s


UnitMemos = dict[tuple[int, int, int], tuple[Any, Any, dict[Any, Any]]]
"""(id(model), id(hw), chips) -> (model, hw, memo): results that depend only on a unit type's
frozen model and hardware, memoised per unit type (the objects kept alive so their ids stay
theirs)."""


def unit_memo(memos: UnitMemos, model: ModelSpec, hw: HardwareProfile, chips: int
              ) -> dict[Any, Any]:
    """The memo of the unit type (``model``, ``hw``, ``chips``) in ``memos``, made empty on first
    use; ``memos`` starts over past ``_KV_BYTES_CACHE_MODELS`` unit types."""
    unit = (id(model), id(hw), chips)
    entry = memos.get(unit)
    if entry is None or entry[0] is not model or entry[1] is not hw:
        if len(memos) >= _KV_BYTES_CACHE_MODELS:
            memos.clear()
        entry = memos[unit] = (model, hw, {})
    return entry[2]


def _attention(b: NDArray[np.float64], ctx: NDArray[np.float64],
               model: ModelSpec) -> NDArray[np.float64]:
    """Context tokens attended per step, counting each layer (sliding windows capped)."""
    full = model.layers - model.sliding_window_layers
    win_ctx = np.minimum(ctx, b * model.sliding_window_tokens)
    return full * ctx + model.sliding_window_layers * win_ctx


def decode_step_times(
    batch_size: ArrayLike,
    context_tokens: ArrayLike,
    model: ModelSpec,
    hw: HardwareProfile,
    chips: int,
    query_tokens: int = 1,
) -> NDArray[np.float64]:
    """Seconds per decode iteration, vectorised over (batch size, total context tokens) pairs.

    ``context_tokens`` is the sum over the batch of each sequence's current length;
    ``query_tokens`` per sequence (1; gamma + 1 for a speculative verify step) multiply the
    FLOPs, the experts hit and the all-reduced activations, not the weights or KV read.
    """
    b = np.asarray(batch_size, dtype=np.float64)
    ctx = np.asarray(context_tokens, dtype=np.float64)
    attended = _attention(b, ctx, model)
    q = float(query_tokens)
    flops = q * (2.0 * model.active_params * b + 4.0 * model.q_heads * model.head_dim * attended)
    compute = flops / (chips * peak_flops(hw, model) * hw.compute_efficiency)
    share = concurrency_share(b, hw)
    if hw.decode_model == "wafer_pipeline":
        floor = pipeline_latency_s(model, hw, chips) * share
        return np.maximum(compute, floor) + hw.step_overhead_s
    read = weights_read_bytes(b * q, model) + model.kv_bytes_per_token_per_layer * attended
    memory = read / (chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency)
    fixed = hw.step_overhead_s + layers_fixed_s(model, hw, chips)
    return np.maximum(compute, memory) + fixed * share + tp_ring_s(b * q, model, hw, chips)


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

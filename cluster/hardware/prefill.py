"""The prefill model: FLOPs and duration of one prefill batch on a unit (the formulas are in
``perf.py``'s docstring: roofline chips, or a wafer pipeline).

A unit's batches come as lists of a few prompt lengths, thousands of times a run: those are
answered in plain Python, bit for bit as the numpy model computes arrays (the same float64
operations in the same order; sums as :func:`~disagg.cluster.hardware.pairwise.pairwise_sum`),
with the terms that depend only on the unit type computed once (:func:`_unit_terms`), and the
batch's answer memoised per unit type (:func:`prefill_time`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.hardware.pairwise import pairwise_sum
from disagg.cluster.hardware.perf import (
    StepTime,
    UnitMemos,
    kv_bytes,
    layers_comm_s,
    layers_fixed_s,
    peak_flops,
    pipeline_latency_s,
    unit_memo,
    weights_read_bytes,
)
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec

def prefill_flops(prompt_tokens: Sequence[int] | NDArray[np.int64], model: ModelSpec,
                  cached_tokens: Sequence[int] | NDArray[np.int64] | None = None) -> float:
    """FLOPs of a causal prefill over each prompt in the batch.

    With ``cached_tokens`` C of a prompt of S tokens already in the prefix cache, only the S - C
    new tokens run: linear layers 2 N (S - C), and attention of the new tokens over the whole
    context, 2 L n_q d (S^2 - C^2) (the causal S^2 term minus the cached C x C triangle).
    A batch given as lists (a unit's few prompts) is summed in plain Python, bit for bit as numpy
    sums the arrays (:func:`pairwise_sum`).
    """
    if type(prompt_tokens) is list and (cached_tokens is None or type(cached_tokens) is list):
        return _list_flops(prompt_tokens, model, cached_tokens)
    s = np.asarray(prompt_tokens, dtype=np.float64)
    c = np.zeros_like(s) if cached_tokens is None else np.asarray(cached_tokens, dtype=np.float64)
    if cached_tokens is not None and (c.shape != s.shape or np.any(c < 0) or np.any(c > s)):
        raise ValueError(_CACHED_TOKENS_ERROR)
    attn = 2.0 * model.layers * model.q_heads * model.head_dim * (s * s - c * c)
    return float(np.sum(2.0 * model.active_params * (s - c) + attn))


_CACHED_TOKENS_ERROR = "cached_tokens needs one value per prompt, each in [0, prompt tokens]"


def _list_flops(prompt_tokens: list[int], model: ModelSpec, cached_tokens: list[int] | None
                ) -> float:
    """:func:`prefill_flops` of lists: the same float64 operations in the same order (without a
    cache, S - 0.0 and S^2 - 0.0 x 0.0 are S and S^2 exactly, so they are left out)."""
    linear = 2.0 * model.active_params
    attention = 2.0 * model.layers * model.q_heads * model.head_dim
    if cached_tokens is None:
        return pairwise_sum([linear * s + attention * (s * s)
                             for s in map(float, prompt_tokens)])
    if len(cached_tokens) != len(prompt_tokens):
        raise ValueError(_CACHED_TOKENS_ERROR)
    terms = []
    for s_tokens, c_tokens in zip(prompt_tokens, cached_tokens):  # (lengths checked above)
        if not 0 <= c_tokens <= s_tokens:
            raise ValueError(_CACHED_TOKENS_ERROR)
        s, c = float(s_tokens), float(c_tokens)
        terms.append(linear * (s - c) + attention * (s * s - c * c))
    return pairwise_sum(terms)


_PREFILL_CACHE: UnitMemos = {}  # batch -> StepTime per unit type
_PREFILL_CACHE_BATCHES = 1 << 16  # batches remembered per unit type before its cache starts over
_TERMS: UnitMemos = {}  # the unit type's constant terms (_unit_terms)


def prefill_time(
    prompt_tokens: Sequence[int] | NDArray[np.int64],
    model: ModelSpec,
    hw: HardwareProfile,
    chips: int,
    cached_tokens: Sequence[int] | NDArray[np.int64] | None = None,
) -> StepTime:
    """Duration of one prefill batch of the given prompt lengths on a unit of ``chips`` chips
    (see :func:`_prefill_time`). Batches given as lists of ints are answered from a cache per
    (model, hardware, chips): the model and hardware are frozen, so the answer is the same."""
    if type(prompt_tokens) is not list or not (cached_tokens is None
                                               or type(cached_tokens) is list):
        return _prefill_time(prompt_tokens, model, hw, chips, cached_tokens)
    memo = unit_memo(_PREFILL_CACHE, model, hw, chips)
    key = (tuple(prompt_tokens), None if cached_tokens is None else tuple(cached_tokens))
    value: StepTime | None = memo.get(key)
    if value is None:
        if len(memo) >= _PREFILL_CACHE_BATCHES:
            memo.clear()
        value = memo[key] = _list_time(prompt_tokens, model, hw, chips, cached_tokens)
    return value


def _prefill_time(
    prompt_tokens: Sequence[int] | NDArray[np.int64],
    model: ModelSpec,
    hw: HardwareProfile,
    chips: int,
    cached_tokens: Sequence[int] | NDArray[np.int64] | None = None,
) -> StepTime:
    """Duration of one prefill batch of the given prompt lengths on a unit of ``chips`` chips.

    ``cached_tokens`` (per prompt, default none): leading tokens whose KV the unit's prefix cache
    already holds; compute counts only the new tokens (see :func:`prefill_flops`), memory still
    moves the whole context's KV (cached KV is read, new KV written).
    """
    if len(prompt_tokens) == 0:
        raise ValueError("a prefill batch needs at least one prompt")
    compute = prefill_flops(prompt_tokens, model, cached_tokens) / (
        chips * peak_flops(hw, model) * hw.compute_efficiency
    )
    # tokens computed this step: cached ones activate no experts and cross no all-reduce
    computed = _total(prompt_tokens)
    if cached_tokens is not None:
        computed -= _total(cached_tokens)
    if hw.decode_model == "wafer_pipeline":
        fill = pipeline_latency_s(model, hw, chips)
        return StepTime(compute + fill + hw.step_overhead_s, compute, fill, hw.step_overhead_s)
    moved = float(weights_read_bytes(computed, model)) + _kv_total(prompt_tokens, model)
    memory = moved / (chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency)
    overhead = hw.step_overhead_s + float(layers_comm_s(computed, model, hw, chips))
    return StepTime(max(compute, memory) + overhead, compute, memory, overhead)


def _unit_terms(model: ModelSpec, hw: HardwareProfile, chips: int) -> tuple[float, ...]:
    """What :func:`_prefill_time` computes the same way for every batch of a unit type, by the
    same operations: the compute divisor, the pipeline fill (wafer) or the memory divisor, the
    per-layer fixed seconds and the ring all-reduce's factor before the tokens (roofline)."""
    memo = unit_memo(_TERMS, model, hw, chips)
    terms: tuple[float, ...] | None = memo.get(None)
    if terms is None:
        compute_div = chips * peak_flops(hw, model) * hw.compute_efficiency
        if hw.decode_model == "wafer_pipeline":
            terms = (compute_div, pipeline_latency_s(model, hw, chips))
        else:
            # tp_ring_s's product, left to right: its first factors do not depend on the tokens
            terms = (compute_div, chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency,
                     layers_fixed_s(model, hw, chips), 4.0 * (chips - 1) / max(chips, 1))
        memo[None] = terms
    return terms


def _list_time(prompt_tokens: list[int], model: ModelSpec, hw: HardwareProfile, chips: int,
               cached_tokens: list[int] | None) -> StepTime:
    """:func:`_prefill_time` of lists in plain Python with the unit type's terms precomputed:
    the same float64 operations in the same order (~5 x cheaper: no numpy scalars)."""
    if not prompt_tokens:
        raise ValueError("a prefill batch needs at least one prompt")
    terms = _unit_terms(model, hw, chips)
    compute = _list_flops(prompt_tokens, model, cached_tokens) / terms[0]
    computed = _total(prompt_tokens)
    if cached_tokens is not None:
        computed -= _total(cached_tokens)
    if len(terms) == 2:  # a wafer pipeline: the fill
        return StepTime(compute + terms[1] + hw.step_overhead_s, compute, terms[1],
                        hw.step_overhead_s)
    _, memory_div, fixed, ring_factor = terms
    weights = model.weight_bytes if not model.experts else float(
        weights_read_bytes(computed, model))
    memory = (weights + _kv_total(prompt_tokens, model)) / memory_div
    ring = ring_factor * computed * model.hidden_size * hw.activation_bytes
    overhead = hw.step_overhead_s + (fixed + model.layers * ring / hw.interconnect_bytes_per_s)
    return StepTime(max(compute, memory) + overhead, compute, memory, overhead)


def _total(tokens: Sequence[int] | NDArray[np.int64]) -> float:
    """The float64 sum of ``tokens`` (lists in plain Python, as ``np.sum`` would add them)."""
    if type(tokens) is list:
        return pairwise_sum([float(t) for t in tokens])
    return float(np.sum(np.asarray(tokens, dtype=np.float64)))


def _kv_total(prompt_tokens: Sequence[int] | NDArray[np.int64], model: ModelSpec) -> float:
    """KV bytes of every prompt in a batch, summed (lists: from the per-prompt cache)."""
    if type(prompt_tokens) is list:
        return pairwise_sum([float(kv_bytes(t, model)) for t in prompt_tokens])
    return float(np.sum(kv_bytes(np.asarray(prompt_tokens), model)))

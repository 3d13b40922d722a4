"""The duration of one mixed iteration of a colocated unit: running decodes plus prefill chunks.

A colocated GPU server (vLLM / Sarathi-Serve continuous batching with chunked prefill) runs, in
one forward pass, one token for each of ``b`` decoding sequences (holding ``ctx`` KV tokens in
all) and ``c_j`` prompt tokens of each prefilling request j whose first ``p_j`` prompt tokens are
already in the KV cache. Its duration is the decode step the same unit would take for the decodes
alone (``perf.decode_step_time`` — weights read, KV read, per-step and per-layer fixed costs,
tensor-parallel all-reduces), plus the *marginal* roofline cost of the chunk tokens and the
all-reduce time of their activations:

    iteration_s = decode_step_time(b, ctx) + max(0, R(F_d + F_c, M_d + M_c) - R(F_d, M_d))
                  + tp_ring_s(b + C) - tp_ring_s(b)          (C = chunk tokens in all)
    R(F, M)     = max(F / (chips x peak x compute_efficiency), M / (chips x bandwidth x memory_eff))
    F_d = 2 N_active b + 4 L n_q d ctx                (decode FLOPs)
    M_d = weights read by b tokens + KV bytes of ctx  (decode bytes; MoE: the experts they hit)
    F_c = sum_j 2 N_active c_j + 2 L n_q d c_j^2 + 4 L n_q d c_j p_j   (chunk FLOPs: linear layers,
          causal attention inside the chunk, attention to the chunk's prefix)
    M_c = sum_j KV bytes of p_j (read) + KV bytes of c_j (written) + the extra expert weights
          the chunk tokens activate (MoE)

So a decode-only iteration takes exactly a disaggregated decode unit's step on the same hardware,
a prefill-only iteration of a whole prompt takes exactly ``prefill.prefill_time`` of that prompt, and
prefill chunks slow the
decodes that share their iteration by the compute they add — the prefill-decode interference that
disaggregation removes. Sliding-window layers are ignored in the chunk terms (an upper bound for
models that have them). Seconds, tokens, bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from disagg.cluster.hardware.perf import (
    decode_step_time,
    kv_bytes,
    peak_flops,
    tp_ring_s,
    weights_read_bytes,
)
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec


def _roofline_s(flops: float, moved_bytes: float, hw: HardwareProfile, model: ModelSpec,
                chips: int) -> float:
    """max(compute time, memory time) of ``flops`` and ``moved_bytes`` on ``chips`` chips."""
    compute = flops / (chips * peak_flops(hw, model) * hw.compute_efficiency)
    memory = moved_bytes / (chips * hw.memory_bandwidth_bytes_per_s * hw.memory_efficiency)
    return max(compute, memory)


def chunk_flops(prefix_tokens: Sequence[int], chunk_tokens: Sequence[int], model: ModelSpec) -> float:
    """FLOPs of prefill chunks of ``chunk_tokens`` tokens after ``prefix_tokens`` cached tokens."""
    p = np.asarray(prefix_tokens, dtype=np.float64)
    c = np.asarray(chunk_tokens, dtype=np.float64)
    attn = model.layers * model.q_heads * model.head_dim * (2.0 * c * c + 4.0 * c * p)
    return float(np.sum(2.0 * model.active_params * c + attn))


def mixed_iteration_s(
    decode_batch: int, decode_context_tokens: int, prefix_tokens: Sequence[int],
    chunk_tokens: Sequence[int], model: ModelSpec, hw: HardwareProfile, chips: int,
) -> float:
    """Seconds of one iteration: ``decode_batch`` decodes holding ``decode_context_tokens`` KV
    tokens in all, and prefill chunks ``chunk_tokens`` after ``prefix_tokens`` (formula above)."""
    if len(prefix_tokens) != len(chunk_tokens):
        raise ValueError("one prefix length per chunk")
    if decode_batch == 0 and not len(chunk_tokens):
        raise ValueError("an iteration needs at least one decode or one chunk")
    base = decode_step_time(decode_batch, decode_context_tokens, model, hw, chips)
    if not len(chunk_tokens):
        return base
    chunked = float(np.sum(np.asarray(chunk_tokens, dtype=np.float64)))
    f_d = 2.0 * model.active_params * decode_batch + (
        4.0 * model.layers * model.q_heads * model.head_dim * decode_context_tokens)
    weights_d = float(weights_read_bytes(decode_batch, model))
    m_d = weights_d + float(kv_bytes(decode_context_tokens, model))
    f_c = chunk_flops(prefix_tokens, chunk_tokens, model)
    m_c = float(np.sum(kv_bytes(np.asarray(prefix_tokens), model))) + float(
        np.sum(kv_bytes(np.asarray(chunk_tokens), model))) + (
        float(weights_read_bytes(decode_batch + chunked, model)) - weights_d)
    marginal = (_roofline_s(f_d + f_c, m_d + m_c, hw, model, chips)
                - _roofline_s(f_d, m_d, hw, model, chips))
    ring = float(tp_ring_s(decode_batch + chunked, model, hw, chips)) - float(
        tp_ring_s(decode_batch, model, hw, chips))
    return base + max(0.0, marginal) + ring

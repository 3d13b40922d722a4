"""What ``disagg serve`` says about each emulated unit in vLLM's terms: the cache configuration
vLLM exposes as ``vllm:cache_config_info`` (block size in tokens, KV blocks the unit holds,
whether it keeps a prefix cache), derived from the experiment."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.config import Experiment
from disagg.cluster.facts import decode_kv_capacity, prefill_cache_blocks, unit_ids
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS


@dataclass(frozen=True)
class UnitCache:
    """One unit's ``vllm:cache_config_info`` labels: ``block_size`` tokens per KV block,
    ``num_gpu_blocks`` blocks its free memory holds, ``enable_prefix_caching``."""

    unit: str
    kind: str  # prefill | decode | colocated
    block_size: int
    num_gpu_blocks: int
    enable_prefix_caching: bool


def unit_caches(exp: Experiment) -> tuple[UnitCache, ...]:
    """Every unit's cache facts: decode and colocated units hold their KV capacity in blocks of
    ``PREFIX_BLOCK_TOKENS``; prefill units their prefix cache's blocks."""
    block_bytes = float(kv_bytes(PREFIX_BLOCK_TOKENS, exp.model))
    decode_blocks = int(decode_kv_capacity(exp) // block_bytes)
    prefix = exp.prefix_cache.enabled
    out = []
    for name, uid in unit_ids(exp).items():
        blocks = prefill_cache_blocks(exp) if uid.kind == "prefill" else decode_blocks
        keeps = prefix if uid.kind != "decode" else exp.prefix_cache.decode_keep
        out.append(UnitCache(name, uid.kind, PREFIX_BLOCK_TOKENS, blocks, keeps))
    return tuple(out)

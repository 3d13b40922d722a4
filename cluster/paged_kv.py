"""Paged KV memory of a decode or colocated unit (vLLM's PagedAttention block manager), as pure
arithmetic: blocks of ``block_tokens`` tokens, a request holding ceil(context / block_tokens)
blocks that grow as it generates, admission only while the free blocks stay above a watermark,
and how many planned steps of a batch fit before one cannot grow (then the unit preempts).

Sources: block size 16 tokens and watermark 0.01 are vLLM's defaults (``CacheConfig.block_size``;
v0 ``BlockSpaceManager`` ``watermark_blocks = int(watermark x num_gpu_blocks)`` checked on
allocation of a new sequence, never on growth). Tokens, blocks, bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.specs import ModelSpec


@dataclass(frozen=True)
class PagedKv:
    """A unit's KV blocks: ``capacity_blocks`` of ``block_bytes`` each, ``watermark_blocks`` of
    them kept free from admissions; preempted requests are recomputed or swapped to host memory
    at ``swap_bytes_per_s``."""

    block_tokens: int
    block_bytes: float
    capacity_blocks: int
    watermark_blocks: int
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_bytes_per_s: float = 25e9

    def blocks(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens: ceil(tokens / block_tokens)."""
        return -(-tokens // self.block_tokens)

    def bytes_for(self, tokens: int) -> float:
        """Bytes of the blocks that hold ``tokens`` tokens."""
        return self.blocks(tokens) * self.block_bytes

    def blocks_of(self, held: dict[int, float]) -> int:
        """Blocks in use by requests holding ``held`` bytes each (whole blocks)."""
        return int(round(sum(held.values()) / self.block_bytes))

    @property
    def capacity_bytes(self) -> float:
        """Bytes of all the unit's blocks."""
        return self.capacity_blocks * self.block_bytes

    @property
    def admit_capacity_bytes(self) -> float:
        """Bytes admissions may fill: all blocks but the watermark's."""
        return (self.capacity_blocks - self.watermark_blocks) * self.block_bytes

    def fits_any_split(self, tokens: int, requests: int) -> bool:
        """Whether ``requests`` requests holding ``tokens`` tokens in all fit in the unit's
        blocks however the tokens are split among them (each has at most one partly filled
        block: the sum of ceil(t_i / block) is at most floor(tokens / block) + requests)."""
        return tokens // self.block_tokens + requests <= self.capacity_blocks

    def steps_that_fit(self, context: np.ndarray, gained: np.ndarray, other_blocks: int = 0) -> int:
        """Of planned steps ``gained[s, i]`` (tokens request i gains at step s) of a batch holding
        ``context[i]`` tokens, how many run before a step needs more blocks than the unit has
        (``other_blocks`` held by others); len(gained) when all fit."""
        if len(gained) == 0:
            return 0
        cum = np.cumsum(gained, axis=0)
        last = int((-(-(context + cum[-1]) // self.block_tokens)).sum()) + other_blocks
        if last <= self.capacity_blocks:  # blocks only grow: the last step needs the most
            return len(gained)
        need = (-(-(context[None, :] + cum) // self.block_tokens)).sum(axis=1) + other_blocks
        return int(np.argmax(need > self.capacity_blocks))

    def steps_that_fit_plain(self, context: Sequence[int], steps: int) -> int:
        """:meth:`steps_that_fit` of ``steps`` plain decode steps (each request gains one token
        per step), without building the steps x requests matrix of ones (and, when all fit, in
        plain integers: a batch is a handful of requests)."""
        if steps <= 0:
            return 0
        bt = self.block_tokens
        if sum(-(-(c + steps) // bt) for c in context) <= self.capacity_blocks:
            return steps  # blocks only grow: the last step needs the most
        cum = np.arange(1, steps + 1, dtype=np.int64)[:, None]
        need = (-(-(np.asarray(context, dtype=np.int64)[None, :] + cum) // bt)).sum(axis=1)
        return int(np.argmax(need > self.capacity_blocks))


def paged_kv(capacity_bytes: float, model: ModelSpec, block_tokens: int = 16,
             watermark: float = 0.01, preemption: Literal["recompute", "swap"] = "recompute",
             swap_bytes_per_s: float = 25e9) -> PagedKv:
    """The blocks of a unit with ``capacity_bytes`` of KV memory for ``model``."""
    block_bytes = float(kv_bytes(block_tokens, model))
    blocks = int(max(capacity_bytes, 0.0) // block_bytes)
    return PagedKv(block_tokens, block_bytes, blocks, int(watermark * blocks), preemption,
                   swap_bytes_per_s)

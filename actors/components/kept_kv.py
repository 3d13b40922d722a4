"""The prompt KV a decode unit keeps after a request finishes, for the conversation's next turn.

It lives in the KV memory that running and admitted requests leave free: each change of that free
memory resizes the kept blocks' capacity (evicting by the cache's rule) before new blocks go in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from disagg.cluster.prefix_cache import PrefixCache


class KeptKv:
    """A decode unit's kept prompt blocks (``PrefixCache``) sized by free KV memory, bytes."""

    def __init__(self, cache: PrefixCache, block_bytes: float) -> None:
        if block_bytes <= 0:
            raise ValueError(f"block_bytes must be > 0, got {block_bytes}")
        self.cache = cache
        self.block_bytes = block_bytes
        self.shortfall_blocks = 0  # blocks the router expected here that were evicted meanwhile

    def reuse(self, hashes: Sequence[int], expected_blocks: int) -> int:
        """A request's KV arrived: count the leading blocks held here as hits. Blocks the router
        left out of the transfer (``expected_blocks``) that are no longer held count as a
        shortfall (the emulator does not re-fetch them). Returns the blocks held."""
        held = self.cache.lookup(hashes)
        self.shortfall_blocks += max(0, expected_blocks - held)
        return held

    def fit(self, free_bytes: float) -> None:
        """The unit's free KV memory is now ``free_bytes``: evict what no longer fits."""
        # max(0.0, free_bytes), without the call (a NaN gives 0.0 as max's does)
        self.cache.resize(int((free_bytes if free_bytes > 0.0 else 0.0) // self.block_bytes))

    def keep(self, hashes: Sequence[int], free_bytes: float) -> None:
        """A request finished (its KV freed): keep its prompt blocks in the free memory."""
        self.fit(free_bytes)
        self.cache.insert(hashes)

    def results(self) -> dict[str, Any]:
        """Counters for the run's results (blocks)."""
        return {**vars(self.cache.stats()), "reuse_shortfall_blocks": self.shortfall_blocks}

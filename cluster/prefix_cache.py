"""A unit's prefix (KV block) cache: which prompt blocks' KV it still holds, and what that saves.

Pure bookkeeping, no Ray, no clock. A block is ``PREFIX_BLOCK_TOKENS`` tokens of a prompt named by
its hash id (``Request.prefix_hashes``); a request can reuse the KV of the *leading* blocks the
cache holds (prefix caching as in vLLM, SGLang and Mooncake: a block's KV depends on every token
before it, so the first missing block ends the reusable prefix). Capacity is counted in blocks;
inserting into a full cache evicts by the eviction rule (``lru``: least recently used, a hit
counts as a use; ``fifo``: oldest inserted). Within one request's blocks the later ones count as
older, so they go first (as in vLLM's free-block queue): a block is useless without the blocks
before it. Counters say how many blocks were looked up, hit, inserted and evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from disagg.cluster.messages import PREFIX_BLOCK_TOKENS

Eviction = Literal["lru", "fifo"]


def cached_prefix_tokens(prompt_tokens: int, hit_blocks: int,
                         block_tokens: int = PREFIX_BLOCK_TOKENS) -> int:
    """Prompt tokens whose KV the first ``hit_blocks`` blocks cover, leaving at least one token
    to compute (a prefill must run the last token to produce the first output token, as vLLM's
    prefix caching does on a full hit)."""
    return max(0, min(hit_blocks * block_tokens, prompt_tokens - 1))


def leading_overlap(hashes: Sequence[int], held: Container[int]) -> int:
    """How many of the leading ``hashes`` are in ``held`` (the reusable prefix, in blocks)."""
    n = 0
    for h in hashes:
        if h not in held:
            break
        n += 1
    return n


class HeldBlocks(Set[int]):
    """An immutable set of block ids: those a unit ``reported`` holding plus those ``assigned``
    to it since (disjoint from them): the router's view of a cache, extended per assignment
    without copying the reported set."""

    __slots__ = ("reported", "assigned")

    def __init__(self, reported: frozenset[int], assigned: frozenset[int]) -> None:
        self.reported, self.assigned = reported, assigned

    def __contains__(self, block: object) -> bool:
        return block in self.reported or block in self.assigned

    def __iter__(self) -> Iterator[int]:
        yield from self.reported
        yield from self.assigned

    def __len__(self) -> int:
        return len(self.reported) + len(self.assigned)

    def __hash__(self) -> int:
        return self._hash()  # as a frozenset of the same ids hashes


def with_blocks(held: Set[int], hashes: Iterable[int]) -> Set[int]:
    """``held`` plus ``hashes``: ``held`` itself if it has them all, else a :class:`HeldBlocks`
    over the same reported set (a plain set of ids counts as reported)."""
    if isinstance(held, HeldBlocks):
        reported, assigned = held.reported, held.assigned
    else:
        reported, assigned = frozenset(held), frozenset()
    new = [h for h in hashes if h not in reported and h not in assigned]
    return HeldBlocks(reported, assigned.union(new)) if new else held


@dataclass(frozen=True)
class CacheStats:
    """Cumulative counters of one cache, in blocks (``hit_rate`` = hits / looked-up blocks)."""

    lookup_blocks: int
    hit_blocks: int
    inserted_blocks: int
    evicted_blocks: int
    capacity_blocks: int

    @property
    def hit_rate(self) -> float | None:
        return self.hit_blocks / self.lookup_blocks if self.lookup_blocks else None


class PrefixCache:
    """Block ids held by one unit, bounded by ``capacity_blocks``, evicting by ``eviction``."""

    def __init__(self, capacity_blocks: int, eviction: Eviction = "lru") -> None:
        if capacity_blocks < 0:
            raise ValueError(f"capacity_blocks must be >= 0, got {capacity_blocks}")
        if eviction not in ("lru", "fifo"):
            raise ValueError(f"eviction must be 'lru' or 'fifo', got {eviction!r}")
        self.capacity_blocks = capacity_blocks
        self.eviction = eviction
        self._blocks: OrderedDict[int, None] = OrderedDict()  # oldest (first evicted) first
        # the same ids in a plain set: frozenset() copies a set's hash table ~8x faster than it
        # iterates an OrderedDict, and load reports take a snapshot after every change
        self._members: set[int] = set()
        self._frozen: frozenset[int] | None = frozenset()
        self.lookup_blocks = self.hit_blocks = self.inserted_blocks = self.evicted_blocks = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def leading_hits(self, hashes: Sequence[int]) -> int:
        """How many of the leading ``hashes`` the cache holds (no state change)."""
        return leading_overlap(hashes, self._blocks)

    def lookup(self, hashes: Sequence[int]) -> int:
        """Leading blocks held for a prefill about to run: counted as looked up and hit, and
        (LRU) marked as just used. Returns the number of leading hits."""
        n = self.leading_hits(hashes)
        self.lookup_blocks += len(hashes)
        self.hit_blocks += n
        if self.eviction == "lru":
            for h in reversed(hashes[:n]):
                self._blocks.move_to_end(h)
        return n

    def insert(self, hashes: Sequence[int]) -> None:
        """Hold every block of ``hashes`` (their KV was just computed or received), evicting as
        needed; blocks already held are refreshed (LRU) or left in place (FIFO)."""
        blocks, members, lru = self._blocks, self._members, self.eviction == "lru"
        added = 0
        for h in reversed(hashes):
            if h in members:
                if lru:
                    blocks.move_to_end(h)
                continue
            if self.capacity_blocks == 0:
                break
            blocks[h] = None
            members.add(h)
            added += 1
        if added:
            self.inserted_blocks += added
            self._frozen = None
        self._shrink()

    def resize(self, capacity_blocks: int) -> None:
        """Change the capacity (e.g. to the memory running requests leave free); evicts now."""
        self.capacity_blocks = max(0, capacity_blocks)
        self._shrink()

    def _shrink(self) -> None:
        excess = len(self._blocks) - self.capacity_blocks
        if excess <= 0:
            return
        pop, discard = self._blocks.popitem, self._members.discard
        for _ in range(excess):
            discard(pop(last=False)[0])
        self.evicted_blocks += excess
        self._frozen = None

    def blocks(self) -> frozenset[int]:
        """The held block ids (rebuilt only after a change), as load reports carry them."""
        if self._frozen is None:
            self._frozen = frozenset(self._members)
        return self._frozen

    def stats(self) -> CacheStats:
        """The counters so far."""
        return CacheStats(self.lookup_blocks, self.hit_blocks, self.inserted_blocks,
                          self.evicted_blocks, self.capacity_blocks)


class PrefixCacheConfig(BaseModel):
    """Prefix (KV block) caching in the units; off by default.

    Prefill units (``enabled``) keep the KV of the prompt blocks they computed and skip the
    compute of a request's leading cached blocks. Decode units (``decode_keep``) keep a finished
    request's prompt KV in the memory running requests leave free, for the conversation's next
    turn; with ``transfer = "missing"`` only the blocks the chosen decode unit does not already
    hold (as the router last heard) cross the fabric.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(False, description="prefill units cache prompt blocks and reuse them")
    capacity_blocks: int | None = Field(
        None, ge=0, le=1_000_000_000,
        description=f"blocks ({PREFIX_BLOCK_TOKENS} tokens each) per prefill unit's cache; None = "
        "the memory its weights leave free / the KV bytes of one block",
    )
    eviction: Eviction = Field("lru", description="lru (least recently used) or fifo")
    decode_keep: bool = Field(
        False, description="decode units keep each finished request's prompt KV for the next turn"
    )
    transfer: Literal["full", "missing"] = Field(
        "full", description="KV sent to decode: the full prompt's, or only the blocks the decode "
        "unit does not hold (needs decode_keep)",
    )

    @model_validator(mode="after")
    def _transfer_needs_keep(self) -> PrefixCacheConfig:
        if self.transfer == "missing" and not self.decode_keep:
            raise ValueError("transfer = 'missing' needs decode_keep = true")
        return self

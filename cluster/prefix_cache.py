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

from collections.abc import Container, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from itertools import islice
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from disagg.cluster.block_changes import BlockChanges, IdSet, Step
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS

Eviction = Literal["lru", "fifo"]


def cached_prefix_tokens(prompt_tokens: int, hit_blocks: int,
                         block_tokens: int = PREFIX_BLOCK_TOKENS) -> int:
    """Prompt tokens whose KV the first ``hit_blocks`` blocks cover, leaving at least one token
    to compute (a prefill must run the last token to produce the first output token, as vLLM's
    prefix caching does on a full hit)."""
    return max(0, min(hit_blocks * block_tokens, prompt_tokens - 1))


def leading_overlap(hashes: Sequence[int], held: Container[int]) -> int:
    """How many of the leading ``hashes`` are in ``held`` (the reusable prefix, in blocks).

    Called for most units on every routed request: on a :class:`HeldBlocks` it tests its sets
    directly instead of calling its ``__contains__`` per block."""
    n = 0
    if type(held) is HeldBlocks:
        base, assigned = held.base, held.assigned
        if assigned:  # a router's view with requests assigned since the report
            for h in hashes:
                if h not in base and h not in assigned:
                    break
                n += 1
            return n
        held = base
    for h in hashes:
        if h not in held:
            break
        n += 1
    return n


_EMPTY: frozenset[int] = frozenset()


class HeldBlocks(IdSet):
    """The block ids a unit holds as the router sees them: the ``base`` ids, its copy of the
    unit's last report (``reported_blocks.ReportedBlocks``, changed only when the unit's next
    report replaces the view), plus those ``assigned`` (the blocks of the requests the router
    assigned to it since, :func:`with_blocks`; held ones too), without copying either (an
    :class:`~disagg.cluster.block_changes.IdSet`: equal to the frozenset of the same ids)."""

    __slots__ = ("base", "assigned")

    def __init__(self, base: Set[int], assigned: frozenset[int] = _EMPTY) -> None:
        self.base, self.assigned = base, assigned

    def __contains__(self, block: object) -> bool:
        return block in self.base or block in self.assigned

    def __iter__(self) -> Iterator[int]:
        yield from self.base
        if self.assigned:
            base = self.base
            yield from (h for h in self.assigned if h not in base)

    def __len__(self) -> int:
        n = len(self.base)
        if self.assigned:
            base = self.base
            n += sum(1 for h in self.assigned if h not in base)
        return n

    def __repr__(self) -> str:
        return f"HeldBlocks({set(self)!r})"


def with_blocks(held: Set[int], hashes: Iterable[int]) -> Set[int]:
    """``held`` plus ``hashes``: a :class:`HeldBlocks` sharing ``held``'s base, ``hashes`` joined
    to its assigned ids (a plain set of ids is the base, and is returned itself if it has them
    all)."""
    if type(held) is HeldBlocks:
        # the assigned ids kept apart, held ones too: a few requests' blocks copied per routed
        # request, not a test of which ids are new (~4x cheaper)
        assigned = held.assigned.union(hashes) if held.assigned else frozenset(hashes)
        return HeldBlocks(held.base, assigned)
    base = frozenset(held)
    ids = frozenset(hashes)
    return held if base.issuperset(ids) else HeldBlocks(base, ids)


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
        # held ids, oldest (first evicted) first: a plain dict keeps insertion order, and deleting
        # and re-inserting a key moves it to the end as OrderedDict.move_to_end does (~25 %
        # cheaper over the LRU's work on the Mooncake trace: no linked list to keep)
        self._blocks: dict[int, None] = {}
        # load reports carry the changes since the previous report (see changes()), in order: per
        # insert or resize, the list of ids it added and the list it evicted, as made (no sets)
        self._steps: list[Step] = []
        self._last: BlockChanges | None = None  # the previous report's changes
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
        blocks = self._blocks
        n = 0
        for h in hashes:  # leading_hits, inline: once per prefill and per decode KV arrival
            if h not in blocks:
                break
            n += 1
        self.lookup_blocks += len(hashes)
        self.hit_blocks += n
        if n and self.eviction == "lru":
            for h in reversed(hashes[:n]):  # to the end, the first block last (the newest)
                del blocks[h]
                blocks[h] = None
        return n

    def insert(self, hashes: Sequence[int]) -> None:
        """Hold every block of ``hashes`` (their KV was just computed or received), evicting as
        needed; blocks already held are refreshed (LRU) or left in place (FIFO)."""
        if self.capacity_blocks == 0:
            return  # an empty cache that stays empty
        blocks = self._blocks
        new: list[int] = []
        add = new.append
        if self.eviction == "lru":
            for h in reversed(hashes):  # each to the end: a held one is taken out first
                if h in blocks:  # (a test and a delete: fewer instructions than a pop call)
                    del blocks[h]
                else:
                    add(h)
                blocks[h] = None
        else:
            for h in reversed(hashes):
                if h not in blocks:
                    blocks[h] = None
                    add(h)
        gone = self._evict()
        if new:
            self.inserted_blocks += len(new)
            self._steps.append((new, gone))
        elif gone:
            self._steps.append(((), gone))

    def resize(self, capacity_blocks: int) -> None:
        """Change the capacity (e.g. to the memory running requests leave free); evicts now."""
        self.capacity_blocks = max(0, capacity_blocks)
        gone = self._evict()
        if gone:
            self._steps.append(((), gone))

    def _evict(self) -> Sequence[int]:
        """Evict the oldest blocks beyond the capacity; returns them (oldest first)."""
        excess = len(self._blocks) - self.capacity_blocks
        if excess <= 0:
            return ()
        blocks = self._blocks
        gone = list(islice(blocks, excess))  # the oldest: read at once, then deleted one by one
        for h in gone:  # (~10 % cheaper than popitem(last=False) per block)
            del blocks[h]
        self.evicted_blocks += excess
        return gone

    def blocks(self) -> frozenset[int]:
        """The held block ids (a copy)."""
        return frozenset(self._blocks)

    def changes(self) -> BlockChanges:
        """The held block ids as a load report carries them: the changes since the previous
        report (the same object again if there were none)."""
        if self._steps or self._last is None:
            # the list itself, handed over (a fresh one takes its place): no copy
            changes = BlockChanges(self, self._steps)
            self._steps = []
            if self._last is not None:
                self._last.later = changes
            self._last = changes
        return self._last

    def held_ids(self) -> Iterable[int]:
        """The held block ids now (for :meth:`BlockChanges.held`)."""
        return self._blocks

    def unreported(self) -> Sequence[Step]:
        """The changes since the last report (for :meth:`BlockChanges.held`)."""
        return self._steps

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

"""The held prefix blocks a load report carries, as the changes since the unit's previous report.

A unit's prefix cache changes by a few dozen block ids between two load reports, while it holds
~1,600. A report therefore carries :class:`BlockChanges`: the ids added and removed since the
cache's previous report, linked to the report after it. It is the set of ids held when the report
was made (a ``Set``: equal to, hashed and pickled as that frozenset, computed on demand by
undoing the later changes on the cache's current ids), and the router keeps its own copy of each
unit's held ids up to date by applying the changes of consecutive reports in order
(:class:`ReportedBlocks` in ``prefix_cache``), so neither side copies the held ids per report.

Pure bookkeeping, no Ray: between processes a report pickles as the plain frozenset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set
from typing import Protocol


class HeldNow(Protocol):
    """The cache a :class:`BlockChanges` came from: its held ids and changes not reported yet."""

    def held_ids(self) -> Iterable[int]: ...

    def unreported(self) -> tuple[Set[int], Set[int]]: ...


class IdSet(Set[int]):
    """An immutable set of block ids kept some other way than as a frozenset: equal to, hashed
    as, combined into (``|``, ``&``, ``-``, ``^``) and pickled as the frozenset of the same ids
    (between processes it is one). Subclasses give ``__contains__``, ``__iter__`` and
    ``__len__``."""

    __slots__ = ()

    __hash__ = Set._hash  # as a frozenset of the same ids hashes

    @classmethod
    def _from_iterable(cls, ids: Iterable[int]) -> frozenset[int]:
        return frozenset(ids)  # what the set operators (|, &, -, ^) return

    def __reduce__(self) -> tuple[type[frozenset[int]], tuple[tuple[int, ...]]]:
        return frozenset, (tuple(self),)  # a plain frozenset between processes


class BlockChanges(IdSet):
    """One load report's block ids: ``added`` to and ``removed`` from the ids of the same cache's
    previous report (``added`` disjoint from them, ``removed`` within them; sets the cache hands
    over and no longer changes); ``later`` is the cache's next report's, once made. As a
    ``Set``, the ids held when this report was made."""

    __slots__ = ("added", "removed", "later", "_cache", "_held")

    def __init__(self, cache: HeldNow, added: Set[int], removed: Set[int]) -> None:
        self.added, self.removed = added, removed
        self.later: BlockChanges | None = None
        self._cache = cache
        self._held: frozenset[int] | None = None

    def held(self) -> frozenset[int]:
        """The ids held when this report was made: the cache's ids now, with the changes not
        reported yet and those of every later report undone (newest first)."""
        if self._held is None:
            ids = set(self._cache.held_ids())
            added, removed = self._cache.unreported()
            ids -= added
            ids |= removed
            later = []
            link = self.later
            while link is not None:
                later.append(link)
                link = link.later
            for link in reversed(later):
                ids -= link.added
                ids |= link.removed
            self._held = frozenset(ids)
        return self._held

    def __contains__(self, block: object) -> bool:
        return block in self.held()

    def __iter__(self) -> Iterator[int]:
        return iter(self.held())

    def __len__(self) -> int:
        return len(self.held())

    def __repr__(self) -> str:
        return f"BlockChanges(+{set(self.added)!r}, -{set(self.removed)!r})"

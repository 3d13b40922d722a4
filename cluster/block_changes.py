"""The held prefix blocks a load report carries, as the changes since the unit's previous report.

A unit's prefix cache changes by a few dozen block ids between two load reports, while it holds
~1,600. A report therefore carries :class:`BlockChanges`: the cache's changes since its previous
report, in order, linked to the report after it. It is the set of ids held when the report was
made (a ``Set``: equal to, hashed and pickled as that frozenset, computed on demand by undoing the
later changes on the cache's current ids), and the router keeps its own copy of each unit's held
ids up to date by applying the changes of consecutive reports in order
(:class:`~disagg.cluster.reported_blocks.ReportedBlocks`), so neither side copies the held ids per
report.

Pure bookkeeping, no Ray: between processes a report pickles as the plain frozenset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Set
from typing import Protocol


Step = tuple[Sequence[int], Sequence[int]]
"""One change of a cache: the ids it added (not held before), then the ids it removed (held
before, or just added)."""


class HeldNow(Protocol):
    """The cache a :class:`BlockChanges` came from: its held ids and changes not reported yet."""

    def held_ids(self) -> Iterable[int]: ...

    def unreported(self) -> Sequence[Step]: ...


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


def apply_steps(ids: set[int], steps: Sequence[Step]) -> None:
    """Change ``ids`` in place by ``steps``, in order (each: its added ids in, its removed out).

    The cache's own lists, not net sets: the cache then keeps no per-report sets (a re-evicted or
    returning id is simply added and removed again here)."""
    for added, removed in steps:
        ids.update(added)
        ids.difference_update(removed)


def undo_steps(ids: set[int], steps: Sequence[Step]) -> None:
    """Undo ``steps`` on ``ids`` in place, newest first (the exact inverse of
    :func:`apply_steps`)."""
    for added, removed in reversed(steps):
        ids.update(removed)
        ids.difference_update(added)


class BlockChanges(IdSet):
    """One load report's block ids: the ``steps`` that changed the ids of the same cache's
    previous report into this one's (lists the cache hands over and no longer changes); ``later``
    is the cache's next report's, once made. As a ``Set``, the ids held when this report was
    made."""

    __slots__ = ("steps", "later", "_cache", "_held")

    def __init__(self, cache: HeldNow, steps: Sequence[Step]) -> None:
        self.steps = steps
        self.later: BlockChanges | None = None
        self._cache = cache
        self._held: frozenset[int] | None = None

    @property
    def added(self) -> frozenset[int]:
        """The ids held now and not at the previous report (net of the steps)."""
        return self._net()[0]

    @property
    def removed(self) -> frozenset[int]:
        """The ids held at the previous report and not now (net of the steps)."""
        return self._net()[1]

    def _net(self) -> tuple[frozenset[int], frozenset[int]]:
        added: set[int] = set()
        removed: set[int] = set()
        for new, gone in self.steps:
            for h in new:  # back if removed earlier in these steps, else new
                if h in removed:
                    removed.discard(h)
                else:
                    added.add(h)
            for h in gone:  # just undone if added in these steps, else removed
                if h in added:
                    added.discard(h)
                else:
                    removed.add(h)
        return frozenset(added), frozenset(removed)

    def held(self) -> frozenset[int]:
        """The ids held when this report was made: the cache's ids now, with the changes not
        reported yet and those of every later report undone (newest first)."""
        if self._held is None:
            ids = set(self._cache.held_ids())
            undo_steps(ids, self._cache.unreported())
            later = []
            link = self.later
            while link is not None:
                later.append(link)
                link = link.later
            for link in reversed(later):
                undo_steps(ids, link.steps)
            self._held = frozenset(ids)
        return self._held

    def __contains__(self, block: object) -> bool:
        return block in self.held()

    def __iter__(self) -> Iterator[int]:
        return iter(self.held())

    def __len__(self) -> int:
        return len(self.held())

    def __repr__(self) -> str:
        added, removed = self._net()
        return f"BlockChanges(+{set(added)!r}, -{set(removed)!r})"

"""The prefix cache's block ids as load reports carry them (``PrefixCache.changes``: the blocks
added and removed since the previous report, behaving as the frozenset of the ids held when the
report was made) and the router's copy of them (``ReportedBlocks``: the changes applied in
order). The oracle is a list-based LRU/FIFO cache written here, independent of the code under
test."""

from __future__ import annotations

import pickle
from collections.abc import Set
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.cluster.block_changes import BlockChanges
from disagg.cluster.messages import LoadReport
from disagg.cluster.prefix_cache import HeldBlocks, PrefixCache, leading_overlap, with_blocks
from disagg.cluster.reported_blocks import ReportedBlocks


class ListCache:
    """The reference: held ids in a list, oldest (first evicted) first."""

    def __init__(self, capacity: int, eviction: str) -> None:
        self.capacity, self.lru, self.ids = capacity, eviction == "lru", list[int]()

    def lookup(self, hashes: list[int]) -> None:
        n = 0
        while n < len(hashes) and hashes[n] in self.ids:
            n += 1
        if self.lru:  # the request's head becomes the newest
            for h in reversed(hashes[:n]):
                self.ids.remove(h)
                self.ids.append(h)

    def insert(self, hashes: list[int]) -> None:
        for h in reversed(hashes):
            if self.capacity == 0:
                return
            if h in self.ids:
                if self.lru:
                    self.ids.remove(h)
                    self.ids.append(h)
            else:
                self.ids.append(h)
        self.resize(self.capacity)

    def resize(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        del self.ids[:max(0, len(self.ids) - self.capacity)]


def _check(snap: Set[int], expected: frozenset[int], probes: range) -> None:
    assert len(snap) == len(expected)
    assert snap == expected and expected == snap and not (snap != expected)
    assert sorted(snap) == sorted(expected)
    assert hash(snap) == hash(expected)
    assert [p in snap for p in probes] == [p in expected for p in probes]
    copy = pickle.loads(pickle.dumps(snap))
    assert type(copy) is frozenset and copy == expected


def _run(seed: int, steps: int, eviction: str) -> None:
    rng = random.Random(seed)
    capacity = rng.randint(0, 12)
    cache, ref = PrefixCache(capacity, eviction), ListCache(capacity, eviction)  # type: ignore[arg-type]
    taken: list[tuple[BlockChanges, frozenset[int]]] = []
    router = ReportedBlocks()
    for _ in range(steps):
        op = rng.random()
        if op < 0.15:
            capacity = rng.randint(0, 14)
            cache.resize(capacity)
            ref.resize(capacity)
        else:
            hashes = rng.sample(range(30), rng.randint(0, 6))
            if op < 0.4:
                cache.lookup(hashes)
                ref.lookup(hashes)
            else:
                cache.insert(hashes)
                ref.insert(hashes)
        if rng.random() < 0.7:
            snap = cache.changes()
            expected = frozenset(ref.ids)
            way = rng.random()  # the router gets the report, or a pickled copy, or not at all
            if way < 0.8:
                view = router.update("u", snap)
                assert view == expected and [p in view for p in range(32)] == [
                    p in expected for p in range(32)]
            elif way < 0.9:
                assert router.update("u", pickle.loads(pickle.dumps(snap))) == expected
            _check(snap, expected, range(32))
            assert cache.changes() is snap  # no change since: the same report
            taken.append((snap, expected))
    for snap, expected in taken:  # later changes leave earlier reports as they were
        assert snap == expected and len(snap) == len(expected)


@pytest.mark.parametrize("eviction", ["lru", "fifo"])
def test_snapshots_equal_the_held_set_over_random_operations(eviction: str) -> None:
    for seed in range(40):
        _run(seed, 120, eviction)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["lru", "fifo"]))
def test_snapshots_equal_the_held_set_for_any_seed(seed: int, eviction: str) -> None:
    _run(seed, 60, eviction)


def test_a_report_carries_the_changes_since_the_previous_one() -> None:
    c = PrefixCache(4, "fifo")
    c.insert([1, 2, 3, 4])  # held, oldest first: 4 3 2 1
    first = c.changes()
    assert (first.added, first.removed) == ({1, 2, 3, 4}, set())
    c.insert([5])  # evicts 4
    second = c.changes()
    assert (second.added, second.removed) == ({5}, {4}) and first.later is second
    c.resize(3)  # evicts 3
    c.insert([4])  # evicts 2; 4 was held at the first report, not at the second
    third = c.changes()
    assert (third.added, third.removed) == ({4}, {2, 3}) and third == {1, 4, 5}
    c.insert([6, 7])  # evicts 1, then 5
    fourth = c.changes()
    assert (fourth.added, fourth.removed) == ({6, 7}, {1, 5}) and fourth == {4, 6, 7}
    c.insert([8])  # evicts 4 ...
    c.insert([4])  # ... which comes back (evicting 7): in neither set
    fifth = c.changes()
    assert (fifth.added, fifth.removed) == ({8}, {7}) and fifth == {4, 6, 8}
    assert c.changes() is fifth and fifth.later is None
    # earlier reports are the ids held then, later changes undone
    assert first == {1, 2, 3, 4} and second == {1, 2, 3, 5} and third == {1, 4, 5}


def test_the_router_applies_reports_in_order_and_copies_anything_else() -> None:
    c = PrefixCache(3, "fifo")
    router = ReportedBlocks()
    c.insert([1, 2])  # held, oldest first: 2 1
    one = router.update("u", c.changes())  # the first report: a copy
    assert isinstance(one, HeldBlocks) and one == {1, 2}
    c.insert([3, 4])  # 2 1 4 3: evicts 2
    two = router.update("u", c.changes())  # follows: applied to the same copy in place
    assert two is one and two == {1, 3, 4}
    assert router.update("u", c.changes()) is two  # the same report again: nothing to apply
    c.insert([5])  # evicts 1
    c.changes()  # a report the router drops (older than one it has, or from a lost unit)
    c.insert([6])  # evicts 4
    # after the one it dropped: both reports' changes, in order, applied to the same copy
    four = router.update("u", c.changes())
    assert four is two and four == {3, 5, 6}
    plain = frozenset({9})  # a report pickled between processes, or without a cache
    assert router.update("u", plain) is plain
    c.insert([7])  # evicts 3
    assert router.update("u", c.changes()) == {5, 6, 7}  # after a plain set: a new copy
    other = PrefixCache(3)  # a fresh unit under the same name
    other.insert([8])
    assert router.update("u", other.changes()) == {8}


def test_ids_added_and_evicted_between_two_reports_are_in_neither() -> None:
    c = PrefixCache(2)
    router = ReportedBlocks()
    c.insert([1, 2])  # held, oldest first: 2 1
    first = c.changes()
    assert router.update("u", first) == {1, 2}
    c.insert([3, 4, 5])  # 2 1 5 4 3: evicts 2, 1 and 5, which it had just added
    second = c.changes()
    assert (second.added, second.removed) == ({3, 4}, {1, 2})
    assert router.update("u", second) == {3, 4}  # applied to the copy in place
    c.resize(1)  # evicts 4
    c.insert([5])  # 3 5: evicts 3, then 5 is the only block held
    assert c.changes() == {5} and second == {3, 4} and first == {1, 2}  # undone, newest first


def test_the_router_extends_a_view_and_counts_overlap_by_the_same_rule() -> None:
    snap = HeldBlocks({1, 2, 4, 7})  # the router's copy of a report
    assert snap == {1, 2, 4, 7} and len(snap) == 4
    assert leading_overlap([1, 2, 3], snap) == 2
    assert leading_overlap([7, 1, 4, 9], snap) == 3
    # nothing new: the same ids (a new view object: which assigned ids are new is not tested)
    assert with_blocks(snap, [1, 7]) == snap and len(with_blocks(snap, [1, 7])) == 4
    held = with_blocks(snap, [3, 8, 2])
    assert isinstance(held, HeldBlocks) and held.base is snap.base  # shared, not copied
    assert held == {1, 2, 3, 4, 7, 8} and snap == {1, 2, 4, 7}
    assert len(held) == 6 and sorted(held) == [1, 2, 3, 4, 7, 8]
    assert hash(held) == hash(frozenset({1, 2, 3, 4, 7, 8}))
    assert leading_overlap([1, 2, 3, 4, 8, 7, 5], held) == 6
    again = with_blocks(held, [9, 1])  # assigned ids accumulate until the next report
    assert again == {1, 2, 3, 4, 7, 8, 9} and held == {1, 2, 3, 4, 7, 8}
    assert leading_overlap([9, 3, 8, 5], again) == 3 and 5 not in again and 9 in again
    copy = pickle.loads(pickle.dumps(again))
    assert type(copy) is frozenset and copy == {1, 2, 3, 4, 7, 8, 9}
    assert snap | {9} == {1, 2, 4, 7, 9} and type(snap - {1}) is frozenset
    plain = HeldBlocks(frozenset({1, 2}), frozenset({5}))
    assert leading_overlap([1, 2, 5, 6], plain) == 3 and leading_overlap([], plain) == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_router_views_equal_the_reported_set_plus_the_assigned_blocks(seed: int) -> None:
    # the oracle: plain frozenset unions of a snapshot and every request assigned since
    rng = random.Random(seed)
    cache = PrefixCache(rng.randint(1, 12))
    router = ReportedBlocks()
    view: Set[int] = frozenset()
    expected: frozenset[int] = frozenset()
    for _ in range(40):
        hashes = rng.sample(range(30), rng.randint(0, 6))
        if rng.random() < 0.3:  # a load report replaces the view
            cache.insert(hashes)
            view = router.update("u", cache.changes())
            expected = frozenset(cache.blocks())
        else:  # the router assigns a request
            view = with_blocks(view, hashes)
            expected |= set(hashes)
        _check(view, expected, range(32))
        probe = rng.sample(range(30), rng.randint(0, 8))
        n = 0
        while n < len(probe) and probe[n] in expected:
            n += 1
        assert leading_overlap(probe, view) == n


def test_load_reports_carry_changes_and_pickle_them_as_plain_frozensets() -> None:
    c = PrefixCache(8)
    c.insert([1, 2, 3])
    c.changes()
    c.insert([4])
    report = LoadReport("prefill-0", "prefill", 0, 0, 0, 0.0, 1.0, 0.0, sent_s=1.0,
                        cached_blocks=c.changes())
    assert isinstance(report.cached_blocks, BlockChanges) and report.cached_blocks.added == {4}
    copy = pickle.loads(pickle.dumps(report))
    assert type(copy.cached_blocks) is frozenset and copy.cached_blocks == {1, 2, 3, 4}
    assert copy == report

"""The prefix cache's delta snapshots for load reports (``PrefixCache.blocks``): a base copy plus
the blocks added and removed since, behaving as the frozenset of the held ids. The oracle is a
list-based LRU/FIFO cache written here, independent of the code under test."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.cluster.messages import LoadReport
from disagg.cluster.prefix_cache import HeldBlocks, PrefixCache, leading_overlap, with_blocks


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


def _check(snap: HeldBlocks, expected: frozenset[int], probes: range) -> None:
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
    taken: list[tuple[HeldBlocks, frozenset[int]]] = []
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
            snap = cache.blocks()
            expected = frozenset(ref.ids)
            _check(snap, expected, range(32))
            assert cache.blocks() is snap  # no change since: the same snapshot
            taken.append((snap, expected))
    for snap, expected in taken:  # later changes leave earlier snapshots as they were
        assert snap == expected and len(snap) == len(expected)


@pytest.mark.parametrize("eviction", ["lru", "fifo"])
def test_snapshots_equal_the_held_set_over_random_operations(eviction: str) -> None:
    for seed in range(40):
        _run(seed, 120, eviction)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["lru", "fifo"]))
def test_snapshots_equal_the_held_set_for_any_seed(seed: int, eviction: str) -> None:
    _run(seed, 60, eviction)


def test_the_base_is_copied_afresh_once_the_changes_pass_a_quarter_of_the_cache() -> None:
    assert PrefixCache.REBUILD_SHARE == 0.25
    c = PrefixCache(100, "fifo")
    c.insert(list(range(100)))
    first = c.blocks()  # 100 changes over an empty base: copied
    assert first.base == frozenset(range(100)) and not first.added and not first.removed
    c.insert(list(range(100, 110)))  # 10 in, the 10 oldest (99..90, a request's tail) out
    second = c.blocks()  # 20 changes <= 25: the same base plus the delta
    assert second.base is first.base
    assert second.added == frozenset(range(100, 110))
    assert second.removed == frozenset(range(90, 100))
    assert second == frozenset(range(90)) | frozenset(range(100, 110))
    c.insert([200, 201, 202])  # 3 in, 89..87 out: 26 changes > 25: copied afresh
    third = c.blocks()
    assert third.base is not first.base and not third.added and not third.removed
    assert third == frozenset(range(87)) | frozenset(range(100, 110)) | {200, 201, 202}


def test_a_block_evicted_then_inserted_again_goes_back_to_the_base(
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = PrefixCache(4, "fifo")
    c.insert([1, 2, 3, 4])
    assert c.blocks().base == {1, 2, 3, 4}
    monkeypatch.setattr(PrefixCache, "REBUILD_SHARE", 10.0)  # no copy from here on
    c.insert([5])  # evicts 4
    assert (c.blocks().added, c.blocks().removed) == ({5}, {4})
    c.resize(3)  # evicts 3
    c.insert([4])  # evicts 2; 4 is in the base again
    snap = c.blocks()
    assert (snap.added, snap.removed) == ({5}, {2, 3})
    assert snap == {1, 4, 5}
    c.insert([6, 7])  # evicts 1, then 5, which just leaves the added blocks
    assert (c.blocks().added, c.blocks().removed) == ({6, 7}, {1, 2, 3})
    assert c.blocks() == {4, 6, 7}


def test_the_router_extends_a_snapshot_and_counts_overlap_by_the_same_rule() -> None:
    snap = HeldBlocks(frozenset({1, 2, 3, 4}), frozenset({7}), frozenset({3}))
    assert snap == {1, 2, 4, 7}
    assert leading_overlap([1, 2, 3], snap) == 2  # 3 was removed
    assert leading_overlap([7, 1, 4, 9], snap) == 3
    # nothing new: the same ids (a new view object: which assigned ids are new is not tested)
    assert with_blocks(snap, [1, 7]) == snap and len(with_blocks(snap, [1, 7])) == 4
    held = with_blocks(snap, [3, 8, 2])
    assert isinstance(held, HeldBlocks) and held.base is snap.base
    assert held.added is snap.added and held.removed is snap.removed  # shared, not copied
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
    view: frozenset[int] | HeldBlocks = frozenset()
    expected: frozenset[int] = frozenset()
    for _ in range(40):
        hashes = rng.sample(range(30), rng.randint(0, 6))
        if rng.random() < 0.3:  # a load report replaces the view
            cache.insert(hashes)
            view = cache.blocks()
            expected = frozenset(view)
        else:  # the router assigns a request
            view = with_blocks(view, hashes)  # type: ignore[assignment]
            expected |= set(hashes)
        _check(view, expected, range(32))  # type: ignore[arg-type]
        probe = rng.sample(range(30), rng.randint(0, 8))
        n = 0
        while n < len(probe) and probe[n] in expected:
            n += 1
        assert leading_overlap(probe, view) == n


def test_load_reports_carry_snapshots_and_pickle_them_as_plain_frozensets() -> None:
    c = PrefixCache(8)
    c.insert([1, 2, 3])
    c.blocks()
    c.insert([4])
    report = LoadReport("prefill-0", "prefill", 0, 0, 0, 0.0, 1.0, 0.0, sent_s=1.0,
                        cached_blocks=c.blocks())
    assert isinstance(report.cached_blocks, HeldBlocks) and report.cached_blocks.added == {4}
    copy = pickle.loads(pickle.dumps(report))
    assert type(copy.cached_blocks) is frozenset and copy.cached_blocks == {1, 2, 3, 4}
    assert copy == report

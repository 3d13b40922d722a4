"""Histories folded onto the grid in batches (``cluster/timeseries.py``) give, bit for bit, the
bins of folding every event as it comes: the latest change per bin by (time, arrival), and each
bin's sum as the same float additions in the same order; events behind the bins already handed
out count as late and land in the first bin held. The oracle folds event by event in plain
Python."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from disagg.cluster.timeseries import BinnedIntegral, SteppedValues, bin_of

STEP_S = 0.5


def _changes(seed: int) -> list[tuple[float, float]]:
    """Changes mostly in time order, some out of order, some on grid points."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(0.15, 600)) + rng.normal(0, 0.2, 600) * (rng.random(600) < 0.2)
    times = np.where(rng.random(600) < 0.1, np.round(times * 2) / 2, times)  # on the grid
    return [(max(0.0, float(t)), float(v)) for t, v in zip(times, rng.integers(0, 9, 600),
                                                            strict=True)]


def test_step_values_folded_in_batches_equal_an_event_by_event_fold() -> None:
    events = _changes(5)
    series = SteppedValues(STEP_S, 2)
    latest: dict[int, tuple[float, int, float]] = {}  # the oracle: bin -> (time, arrival, value)
    base, late, got, want, carry = 1, 0, [], [], 0.0
    for seq, (t, v) in enumerate(events):
        series.change(t, v, -v)
        k = bin_of(t, STEP_S)
        if k < base:
            late, k = late + 1, base
        if k not in latest or (t, seq) >= latest[k][:2]:
            latest[k] = (t, seq, v)
        if seq % 97 == 96:  # hand out the bins before the newest change's
            pop = max(base, bin_of(t, STEP_S))
            values, negated = series.pop_before(pop)
            assert negated.tolist() == (-values).tolist()
            got += values.tolist()
            for k in range(base, pop):
                carry = latest[k][2] if k in latest else carry
                want.append(carry)
            base = pop
    n = max(latest)
    got += series.sampled(n)[0].tolist()
    for k in range(base, n + 1):
        carry = latest[k][2] if k in latest else carry
        want.append(carry)
    assert late > 0 and series.late == late
    assert got == want


def test_sums_folded_in_batches_equal_adding_each_piece_in_turn() -> None:
    rng = np.random.default_rng(6)
    held = BinnedIntegral(STEP_S)
    sums: dict[int, float] = {}  # the oracle: bin -> its sum, piece by piece
    base, late, total, got, want = 1, 0, 0.0, [], []

    def add(k: int, amount: float) -> None:
        nonlocal late
        if k < base:
            late, k = late + 1, base
        sums[k] = sums.get(k, 0.0) + amount

    for i, (t, _) in enumerate(_changes(7)):
        if i % 3 == 0:  # a point: tokens at the end of a batch
            amount = float(rng.integers(-3, 40))
            held.point(t, amount)
            add(bin_of(t, STEP_S), amount)
            total += amount
            continue
        end, rate = t + float(rng.choice([0.1, 0.5, 1.3, 2.0])), float(rng.choice([1.0, -1.0, 2.5]))
        held.interval(t, end, rate)
        k, lo = bin_of(t, STEP_S), t
        while lo < end:  # the pieces, bin by bin
            hi = min(end, STEP_S * k)
            if hi > lo:
                add(k, rate * (hi - lo))
                lo = hi
            k += 1
        total += rate * (end - t)
        if i % 89 == 88:
            pop = max(base, bin_of(t, STEP_S))
            got += held.pop_before(pop).tolist()
            want += [sums.get(k, 0.0) for k in range(base, pop)]
            base = pop
    n = max(sums)
    got += held.per_bin(n).tolist()
    want += [sums.get(k, 0.0) for k in range(base, n + 1)]
    assert late > 0 and held.late == late and held.total == total
    assert got == want


def _read_only_copy(obj: object) -> object:
    """``obj`` pickled with its arrays out of band and loaded from read-only buffers, as Ray
    hands an actor's numpy arrays to another process."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=[memoryview(bytes(b.raw())) for b in buffers])


def test_histories_sent_between_processes_still_fold() -> None:
    # a unit's log crosses from its actor to the results with its bins in read-only buffers
    # (the ray engine); folding what comes after writes its own copy of the bins
    steps, sums = SteppedValues(STEP_S, 1), BinnedIntegral(STEP_S)
    steps.change(0.2, 1.0)
    sums.interval(0.1, 0.7, 2.0)
    steps.pop_before(2)
    sums.pop_before(2)  # folded: the bins are arrays now
    steps.change(1.2, 5.0)
    sums.interval(0.9, 1.3, 1.0)
    sent_steps, sent_sums = _read_only_copy(steps), _read_only_copy(sums)
    assert isinstance(sent_steps, SteppedValues) and isinstance(sent_sums, BinnedIntegral)
    for series in (steps, sent_steps):
        series.change(1.4, 7.0)
    for integral in (sums, sent_sums):
        integral.point(1.4, 0.5)
    # bins 2 and 3, (0.5, 1] and (1, 1.5]: the value carried from bin 1, then the latest change;
    # the interval's parts and the point
    assert [list(v) for v in sent_steps.sampled(3)] == [list(v) for v in steps.sampled(3)] \
        == [[1.0, 7.0]]
    assert list(sent_sums.per_bin(3)) == list(sums.per_bin(3))
    assert list(sums.per_bin(3)) == pytest.approx([2.0 * 0.2 + 0.1, 0.3 + 0.5])

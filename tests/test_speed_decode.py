"""The decode unit's faster paths give bit for bit what the plain ones they replaced give: step
times planned in place against ``decode_step_times``, boundary runs against arrays built in
full, sketch runs against explicit weights, and array buckets against a per-key fold."""

from __future__ import annotations

import math

import numpy as np

from disagg.actors.components.recent_boundaries import RecentBoundaries
from disagg.cluster.hardware import catalog, decode_plan, perf
from disagg.cluster.paged_kv import PagedKv
from disagg.cluster.sketch import QuantileSketch, _Buckets
from disagg.cluster.sketch_keys import ZERO, ZERO_KEY
from disagg.cluster.timeseries import BinnedIntegral, bin_of


def test_planned_step_times_are_the_step_times_of_the_growing_context() -> None:
    checked = 0
    for model in catalog.models().values():
        for hw in catalog.hardware().values():
            for chips, b, ctx in ((1, 1, 0), (4, 3, 1000), (8, 64, 123_457)):
                try:
                    plain = perf.decode_step_times(b, ctx + b * np.arange(40, dtype=np.float64),
                                                   model, hw, chips)
                except ValueError:  # FP8 weights on a chip without FP8
                    continue
                planned = decode_plan.decode_plan_times(b, ctx, 40, model, hw, chips)
                assert planned.tobytes() == plain.tobytes()
                checked += 1
    assert checked > 100


def test_planned_step_times_where_compute_overtakes_the_wafer_floor() -> None:
    model, hw = catalog.models()["llama-3.1-70b"], catalog.hardware()["cs3"]
    low, high = 0, 10**10  # the context at which compute passes the latency floor
    while high - low > 1:
        mid = (low + high) // 2
        times = perf.decode_step_times(8, np.array([low, mid], dtype=np.float64), model, hw, 4)
        low, high = (mid, high) if times[1] == times[0] else (low, mid)
    for b, ctx in ((8, high - 8 * 100), (1, high - 5), (8, high), (3, 0), (0, 77)):
        plain = perf.decode_step_times(b, ctx + b * np.arange(300, dtype=np.float64), model, hw, 4)
        assert decode_plan.decode_plan_times(b, ctx, 300, model, hw, 4).tobytes() == plain.tobytes()
    crossing = perf.decode_step_times(8, high - 800 + 8 * np.arange(300.0), model, hw, 4)
    assert crossing[0] < crossing[-1]  # the plan above does cross the floor


def test_plain_fit_in_ints_as_in_the_matrix_of_ones() -> None:
    kv = PagedKv(block_tokens=16, block_bytes=1.0, capacity_blocks=20, watermark_blocks=0)
    for context, steps in (([78, 78], 5), ([78], 5), ([144], 40), ([1, 2, 3], 90), ([], 3)):
        gained = np.ones((steps, len(context)), dtype=np.int64)
        assert kv.steps_that_fit_plain(context, steps) == kv.steps_that_fit(
            np.array(context, dtype=np.int64), gained)


def test_a_total_that_fits_any_split_fits_every_split() -> None:
    kv = PagedKv(block_tokens=16, block_bytes=1.0, capacity_blocks=20, watermark_blocks=0)
    rng = np.random.default_rng(8)
    for _ in range(2000):
        context = rng.integers(0, 120, int(rng.integers(1, 6))).tolist()
        if kv.fits_any_split(sum(context), len(context)):
            assert sum(kv.blocks(c) for c in context) <= kv.capacity_blocks
    assert kv.fits_any_split(16 * 19, 1) and not kv.fits_any_split(16 * 19, 2)


def test_boundary_runs_hold_what_the_full_arrays_would() -> None:
    rng = np.random.default_rng(7)
    runs, plain, t = RecentBoundaries(64, rows=2), np.zeros(0), 0.0
    for k in rng.integers(1, 90, 300):
        bounds = t + np.cumsum(rng.uniform(0.01, 0.02, k))
        t = float(bounds[-1])
        value, last = float(rng.integers(0, 9)), float(rng.integers(0, 9))
        full = np.full(k, value)
        full[-1] = last
        runs.extend(bounds, (value, last))
        plain = np.concatenate((plain, full))[-64:]
        assert runs.view(1).tobytes() == plain.tobytes()
        assert runs.view()[-1] == t


def _fill(sketch: QuantileSketch, seed: int, runs: bool) -> QuantileSketch:
    rng = np.random.default_rng(seed)
    for _ in range(1500):
        k = int(rng.integers(1, 150))
        values = rng.lognormal(-4, 1.5, k)
        values[rng.random(k) < 0.02] = 0.0
        first, each = float(rng.integers(0, 3)), float(rng.integers(1, 5))
        if runs:
            sketch.add_run(values, first, each)
        else:
            weights = np.full(k, each)
            weights[0] = first
            sketch.add_many(values, weights)
    return sketch


def test_sketch_runs_sum_as_explicit_weights_do() -> None:
    for seed in (1, 2):
        runs, plain = _fill(QuantileSketch(), seed, True), _fill(QuantileSketch(), seed, False)
        assert not runs.exact and runs.totals() == plain.totals()
        for a, b in zip(runs.values(), plain.values(), strict=True):
            assert a.tobytes() == b.tobytes()
        small_runs, small_plain = QuantileSketch(), QuantileSketch()
        small_runs.add_run(np.array([0.5, 0.25, 0.125]), 0.0, 2.0)
        small_plain.add_many(np.array([0.5, 0.25, 0.125]), np.array([0.0, 2.0, 2.0]))
        assert small_runs.exact and small_runs.totals() == small_plain.totals() == (2, 4.0, 0.75)


def test_array_buckets_fold_as_a_dict_per_key_does() -> None:
    rng = np.random.default_rng(3)
    by_key: dict[int, tuple[float, float, float]] = {}
    buckets = _Buckets()
    for _ in range(200):
        v = rng.lognormal(-3, 2, 50)
        v[:3] = 0.0
        keys = [ZERO_KEY if x <= ZERO else math.ceil(math.log(x) / math.log(199 / 197))
                for x in v.tolist()]
        batch: dict[int, tuple[float, float, float]] = {}
        for k, x in zip(keys, v.tolist(), strict=True):
            w, lo, hi = batch.get(k, (0.0, math.inf, -math.inf))
            batch[k] = (w + 1.0, min(lo, x), max(hi, x))
        order = sorted(batch)
        rows = np.array([batch[k] for k in order])
        buckets.fold(np.array(order, dtype=np.int64), rows[:, 0], rows[:, 1], rows[:, 2])
        for k in order:  # the oracle: one key at a time, in plain floats
            old, new = by_key.get(k), batch[k]
            by_key[k] = new if old is None else (old[0] + new[0], min(old[1], new[1]),
                                                 max(old[2], new[2]))
    assert buckets.as_dict() == dict(sorted(by_key.items()))
    assert _Buckets.of(by_key).as_dict() == dict(sorted(by_key.items()))


def test_contiguous_spans_sum_per_bin_as_piece_by_piece() -> None:
    """Runs of work back to back (each starts where the last ended, some on a grid point), as a
    decode unit logs them: the per-bin sums are those of adding each span's pieces in turn."""
    step, rng = 0.5, np.random.default_rng(9)
    ends = np.cumsum(rng.choice([0.5, 0.25, 0.1, 0.7, 1.3], 300))
    held, start = BinnedIntegral(step), 0.0
    plain: dict[int, float] = {}
    for end in ends.tolist():
        held.interval(start, end)
        k, lo = bin_of(start, step) if start > 0 else 1, start
        while lo < end:
            hi = min(end, step * k)
            if hi > lo:
                plain[k] = plain.get(k, 0.0) + (hi - lo)
            lo, k = max(lo, hi), k + 1
        start = end
    assert held.per_bin(max(plain)).tolist() == [plain.get(k, 0.0) for k in range(1, max(plain) + 1)]

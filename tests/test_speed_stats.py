"""The statistics' fast paths keep results bit for bit: a sketch's runs bucketed from their ends
against one logarithm per value, lags of 0 counted against one ``add`` each, a request's row
written out per sequence of record types against the general fold."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import make_request

from disagg.cluster import sketch, sketch_keys
from disagg.cluster.component import RECENT_LAGS, Clock, Component
from disagg.cluster.records import (
    DecodeRecord,
    DecodeRouting,
    EndRecord,
    PrefillRecord,
    PrefillRouting,
    TransferRecord,
    UnitId,
)
from disagg.cluster.rows import fold
from disagg.cluster.sketch import _LOOSE, EXACT_LIMIT, QuantileSketch


def _key(x: float) -> int:
    """A value's bucket key by the per-value rule (numpy's logarithm, as the sketch takes it)."""
    if x <= sketch_keys.ZERO:
        return sketch_keys.ZERO_KEY
    return int(np.ceil(np.log(np.float64(x)) / sketch_keys.LOG_GAMMA))


def _edge(k: int) -> float:
    """The smallest value of bucket ``k`` by :func:`_key` (bisection over the doubles)."""
    lo, hi = sketch_keys.GAMMA ** (k - 1.5), sketch_keys.GAMMA ** (k - 0.5)  # keys k - 1 and k
    while np.nextafter(lo, hi) < hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _key(mid) < k else (lo, mid)
    return hi


def _runs(rng: np.random.Generator) -> list[np.ndarray]:
    """Runs of decode-like step durations (each within ~0.01 % of its first), past the exact
    limit, with now and then a run with an end a few ulp from a bucket edge, across an edge, or
    holding a 0."""
    runs = []
    for i in range(3 * EXACT_LIMIT // 100):
        base = float(rng.uniform(0.002, 0.05))
        runs.append(np.sort(base * (1 + rng.uniform(0, 1e-4, int(rng.integers(1, 200))))))
        if i % 97 == 0:
            edge = _edge(int(rng.integers(-1200, -300)))
            around = [np.nextafter(edge, 0.0), edge, np.nextafter(edge, 1.0)]
            runs.append(np.array([around[j] for j in rng.integers(0, 3, 3)]))
        if i % 389 == 0:
            runs.append(np.array([0.0, 0.01, 0.01]) if i % 2 else np.array([0.01, 0.011]))
    return runs


def test_runs_bucket_as_one_logarithm_per_value_does(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[bool] = []
    run_buckets = sketch_keys.run_buckets

    def counted(*args: np.ndarray) -> sketch_keys.Folded | None:
        out = run_buckets(*args)
        answers.append(out is not None)
        return out

    monkeypatch.setattr(sketch, "run_buckets", counted)
    rng = np.random.default_rng(11)
    fast, plain = QuantileSketch(), QuantileSketch()
    for values in _runs(rng):
        first, each = float(rng.integers(0, 3)), float(rng.integers(1, 5))
        fast.add_run(values, first, each)
        weights = np.full(len(values), each)
        weights[0] = first
        plain.add_many(values, weights)  # explicit weights: bucketed value by value
    assert not fast.exact and fast.totals() == plain.totals()
    assert pickle.dumps(fast.state()) == pickle.dumps(plain.state())
    assert sum(answers) > 10 and answers.count(False) > 10  # both ways taken


def test_a_run_is_bucketed_from_its_ends_only_when_safely_inside_one_bucket() -> None:
    edge = _edge(-500)
    assert _key(np.nextafter(edge, 0.0)) == -501 and _key(edge) == -500
    one = np.ones(2)
    inside = sketch_keys.run_buckets(np.array([edge * (1 + 1e-4), edge * (1 + 2e-3)]), one,
                                 np.array([2]))
    assert inside is not None and inside[0].tolist() == [-500]
    assert inside[1:] == ([2.0], [edge * (1 + 1e-4)], [edge * (1 + 2e-3)])
    # one end at the edge: the same bucket, but within the margin, so value by value
    assert sketch_keys.run_buckets(np.array([edge, edge * 1.001]), one, np.array([2])) is None
    # across the edge by one ulp: two buckets
    across = np.array([np.nextafter(edge, 0.0), edge * 1.001])
    assert sketch_keys.run_buckets(across, one, np.array([2])) is None
    assert sketch_keys.run_buckets(np.array([0.0, 0.01]), one, np.array([2])) is None
    assert sketch_keys.run_buckets(np.array([0.01, np.inf]), one, np.array([2])) is None


class _FixedClock(Clock):
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s - self.t


def test_lags_of_zero_counted_give_the_sketch_and_recent_lags_of_one_add_each() -> None:
    clock = _FixedClock()
    c = Component("c", clock)
    plain = QuantileSketch()
    lags: list[float] = []
    rng = np.random.default_rng(4)
    for i in range(3 * EXACT_LIMIT // 2):
        late = rng.random() < 0.01 or (EXACT_LIMIT - 10 < i < EXACT_LIMIT + _LOOSE)
        lag = float(rng.uniform(0.001, 0.1)) if late else 0.0
        c.act_at(-lag if late else 1.0)  # at 0 (no hold): the lag exactly; early: a lag of 0
        lags.append(lag)
        plain.add(lag)
        if i in (5, 70_000):  # read midway, as the live view does
            assert list(c.recent_lags_s) == lags[-RECENT_LAGS:]
    assert c.acts == len(lags)
    assert list(c.recent_lags_s) == lags[-RECENT_LAGS:]
    assert pickle.dumps(c.lags.state()) == pickle.dumps(plain.state())
    assert c.lags.totals() == (len(lags), float(len(lags)), plain.totals()[2])


def test_add_zeros_is_add_of_zero_again_and_again() -> None:
    for n in (0, 1, _LOOSE - 1, _LOOSE, 3 * _LOOSE + 7, EXACT_LIMIT + 2 * _LOOSE + 1):
        counted, plain = QuantileSketch(), QuantileSketch()
        counted.add(0.5)
        plain.add(0.5)
        counted.add_zeros(n)
        for _ in range(n):
            plain.add(0.0)
        assert pickle.dumps(counted.state()) == pickle.dumps(plain.state())
        assert counted.totals() == (n + 1, n + 1.0, 0.5)


def test_a_row_written_out_per_record_types_is_the_row_of_the_records_picked() -> None:
    """The row builder made per sequence of record types (each once) against the general fold
    (a type repeats: records picked by attempt, values by getters): the same keys in the same
    order and the same values, for a disaggregated request's six records, with and without an
    end, in two orders."""
    req = make_request(request_id=7, arrival_s=1.0, output_tokens=3)
    records = [req, PrefillRouting(7, 0, UnitId("prefill", 1), 0.5),
               PrefillRecord(7, 0, 1.5, 2.0, 100.0, 64),
               DecodeRouting(7, 0, UnitId("decode", 0), 0.25),
               TransferRecord(7, 0, "prefill-1", "decode-0", "h1", "h2", 100.0, 2.0, 2.25),
               DecodeRecord(7, 0, 2.5, 2.75, 3.0, 99, 2.2, 1)]
    older = PrefillRecord(7, -1, 0.0, 0.0, 1.0)  # a repeated type: the general fold
    for order in (records, records[::-1]):
        for end in (EndRecord(7, "completed", "", 3.0, 1), None):
            at = order.index(records[2]) + 1  # after the prefill record: the same type order
            written, picked = fold(order, end), fold([*order[:at], older, *order[at:]], end)
            assert list(written) == list(picked) and written == picked
    row = fold(records, None)
    assert row["prefill_unit"] == "prefill-1" and row["decode_unit"] == "decode-0"
    assert (row["first_token_s"], row["real_bytes"], row["preemptions"]) == (2.0, 99, 1)

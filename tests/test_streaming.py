"""Results that stream: bounded sketches, windowed timeseries bins, the collector's drains, and a
streamed results folder equal to the one assembled in memory."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import make_experiment, make_request

from disagg.actors.components.collector import REORDER_LIMIT, Collector, EndedIds
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.messages import Arrivals, RequestEnded, RequestRedone
from disagg.cluster.records import DecodeRecord, TransferRecord
from disagg.cluster.sketch import ALPHA, EXACT_LIMIT, QuantileSketch
from disagg.cluster.timeseries import BinnedIntegral, SteppedValues, bin_of
from disagg.experiments.run import run_experiment


def test_sketch_is_exact_while_small_and_within_alpha_beyond() -> None:
    rng = np.random.default_rng(0)
    small = rng.lognormal(0, 1, 1000)
    s = QuantileSketch()
    for v in small:
        s.add(float(v))
    values, _ = s.values()
    assert s.exact and sorted(values) == sorted(small)
    big = rng.lognormal(0, 1, 3 * EXACT_LIMIT)
    b = QuantileSketch()
    b.add_many(big[: EXACT_LIMIT], np.ones(EXACT_LIMIT))
    other = QuantileSketch()
    other.add_many(big[EXACT_LIMIT:])
    b.merge(other)
    assert not b.exact
    v, w = b.values()
    order = np.argsort(v)
    cum = np.cumsum(w[order]) / w.sum()
    for q in (0.5, 0.9, 0.99):
        got = v[order][np.searchsorted(cum, q)]
        lo, hi = np.quantile(big, [q - 1e-4, q + 1e-4])
        assert lo * (1 - ALPHA) <= got <= hi * (1 + ALPHA)
    assert b.mean() == pytest.approx(big.mean(), rel=1e-12)
    assert len(v) < 5000  # buckets, not values


def test_bucketed_sketch_keeps_each_buckets_smallest_and_largest_value() -> None:
    # runs of decode iterations (first weight 1, then 3 each) over a few repeated values, past
    # the exact limit: a bucket of equal values must come back exactly with its summed weight,
    # and a bucket of two close values (0.2 and 0.2 (1 + 1e-4), one bucket at ALPHA = 0.5 %)
    # as a representative between them
    s = QuantileSketch()
    cycle = np.array([0.0, 0.01, 0.2, 0.2 * (1 + 1e-4), 0.5])
    runs = 2 * EXACT_LIMIT // len(cycle) // 10
    for _ in range(runs):
        s.add_run(np.tile(cycle, 10), 1.0, 3.0)
    assert not s.exact
    values, weights = s.values()
    # by hand: each run holds 10 of each value; the run's first value (0.0) weighs 1, the rest 3
    assert values[[0, 1, 3]].tolist() == [0.0, 0.01, 0.5]
    assert weights.tolist() == [runs * (1 + 9 * 3), runs * 30, runs * 60, runs * 30]
    assert 0.2 <= values[2] <= 0.2 * (1 + 1e-4)
    assert s.totals()[0] == runs * 50


def test_popped_bins_equal_the_whole_history() -> None:
    step = 0.5
    events = [(0.2, 1.0), (0.7, 3.0), (0.7, 4.0), (2.6, 2.0), (3.0, 5.0)]
    whole, windowed = SteppedValues(step, 1), SteppedValues(step, 1)
    for t, v in events:
        whole.change(t, v)
    for t, v in events[:3]:
        windowed.change(t, v)
    first = windowed.pop_before(bin_of(1.0, step) + 1)[0]
    for t, v in events[3:]:
        windowed.change(t, v)
    rest = windowed.sampled(8)[0]
    # by hand: value at 0.5, 1.0, ... 4.0
    expected = [1, 4, 4, 4, 4, 5, 5, 5]
    assert whole.sampled(8)[0].tolist() == expected
    assert np.concatenate((first, rest)).tolist() == expected
    busy = BinnedIntegral(step)
    busy.interval(0.25, 1.25)
    assert busy.pop_before(3).tolist() == [0.25, 0.5]
    busy.interval(1.25, 1.5)
    assert busy.per_bin(3).tolist() == [0.5] and busy.total == pytest.approx(1.25)
    assert busy.until(1.4) == pytest.approx(1.15)  # the bin holding 1.4 pro rata


def _collector() -> Collector:
    loop = VirtualTimeLoop()
    c = Collector("collector", VirtualClock(loop))
    c.connect({})
    return c


def test_drained_rows_leave_in_request_order_and_unfinished_ones_at_the_end() -> None:
    c = _collector()
    reqs = [make_request(request_id=i, output_tokens=1) for i in range(4)]
    c.deliver(Arrivals(tuple(reqs[:2]), 0.0))
    c.deliver(RequestEnded(1, "rejected", "full", 0.1, (reqs[1],)))
    assert c.drain().rows == []  # 0 has not ended: 1 waits for it
    c.deliver(RequestEnded(0, "rejected", "full", 0.2, (reqs[0],)))
    c.deliver(RequestEnded(3, "rejected", "full", 0.3, (reqs[3],)))  # before its arrival
    c.deliver(Arrivals(tuple(reqs[2:]), 0.0))
    assert [r["request_id"] for r in c.drain().rows] == [0, 1]
    final = c.drain(final=True).rows
    assert [(r["request_id"], r["reason"]) for r in final] == [
        (2, "unfinished_at_drain_deadline"), (3, "full")]
    assert not c.open and len(c.ended) == 3 and REORDER_LIMIT > 0


def _attempt(rid: int, attempt: int, t: float) -> tuple[TransferRecord, DecodeRecord]:
    """One attempt's transfer and decode records (ended at ``t``)."""
    return (TransferRecord(rid, attempt, "prefill-0", f"decode-{attempt}", "h0", "h1", 1e6, t - 0.2,
                           t - 0.1),
            DecodeRecord(rid, attempt, t - 0.1, t - 0.05, t, 1000, t - 0.1))


@pytest.mark.parametrize("held", [False, True], ids=["row-out", "row-held"])
def test_an_attempt_redone_after_its_request_ended_keeps_its_transfer_rows(held: bool) -> None:
    # ray engine: a lost unit's end can reach the collector after the router redid the request
    # (the supervisor read the ended ids before it came); its row stands as it ended, and the
    # redone attempt's transfer, which crossed the fabric too, still gets its row
    c = _collector()
    reqs = [make_request(request_id=i, output_tokens=2) for i in range(2)]
    c.deliver(Arrivals(tuple(reqs), 0.0))
    rid = 0 if not held else 1  # request 1's row waits for request 0's
    c.deliver(RequestEnded(rid, "completed", "", 1.0, (reqs[rid], *_attempt(rid, 1, 1.0))))
    c.deliver(RequestRedone(rid, "decode-1", 1.1))
    c.deliver(RequestEnded(rid, "completed", "", 2.0, (reqs[rid], *_attempt(rid, 2, 2.0))))
    c.deliver(RequestEnded(1 - rid, "rejected", "full", 2.1, (reqs[1 - rid],)))
    out = c.drain(final=True)
    statuses = {rid: "completed", 1 - rid: "rejected"}
    assert [(r["request_id"], r["status"], r["attempts"]) for r in out.rows] == [
        (0, statuses[0], 1), (1, statuses[1], 1)]
    assert [(t["request_id"], t["attempt"], t["dst_unit"]) for t in out.transfers] == [
        (rid, 1, "decode-1"), (rid, 2, "decode-2")]
    counts = c.counts()
    assert c.ignored_ends == 1 and (counts["completed"], counts["rejected"]) == (1, 1)


def test_ended_ids_is_a_set_of_ints() -> None:
    ids = EndedIds()
    for i in (5, 0, 17, 1000):
        ids.add(i)
    assert 17 in ids and 6 not in ids and -1 not in ids and len(ids) == 4
    assert sorted(ids) == [0, 5, 17, 1000]


def test_streamed_folder_equals_the_run_assembled_in_memory(tmp_path) -> None:
    exp = make_experiment(workload__rate_per_s=10.0, experiment__duration_s=10.0,
                          output__sample_interval_s=0.25)
    streamed = run_experiment(exp, tmp_path / "out")
    memory = run_experiment(exp)
    assert pq.read_table(tmp_path / "out" / "requests.parquet").equals(memory.tables["requests"])
    assert streamed.tables["transfers"].num_rows == memory.tables["transfers"].num_rows > 0
    assert pq.read_table(tmp_path / "out" / "transfers.parquet").equals(
        memory.tables["transfers"])
    # requests' and transfers' numbers are stored plainly, their strings as dictionaries
    for name, number, string in (("requests", "arrival_s", "status"),
                                 ("transfers", "start_s", "src_unit")):
        meta = pq.ParquetFile(tmp_path / "out" / f"{name}.parquet").metadata.row_group(0)
        encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                     for i in range(meta.num_columns)}
        assert "RLE_DICTIONARY" not in encodings[number]
        assert "RLE_DICTIONARY" in encodings[string]
    keys = ("submitted", "completed", "mean_ttft_ms", "p99_itl_ms", "prefill_utilization",
            "peak_link_utilization", "lag_p99_ms")
    assert {k: streamed.summary[k] for k in keys} == pytest.approx(
        {k: memory.summary[k] for k in keys}, rel=1e-12)
    ts = streamed.tables["timeseries"]
    assert ts.num_rows == memory.tables["timeseries"].num_rows
    assert pq.ParquetFile(tmp_path / "out" / "timeseries.parquet").metadata.num_row_groups >= 1

"""A unit's log (``actors/components/unit_log.py``) on the 0.5-s grid: state per bin, busy time
as the union of work spans, tokens at their work's end, undo, and a log sent between processes.
Oracles are worked out by hand."""

from __future__ import annotations

import pickle

import pytest

from disagg.actors.components.unit_log import UnitLog


def _log_with_work() -> UnitLog:
    log = UnitLog(0.5)
    log.work(0.1, 0.4, 10)  # bin 1: busy 0.3
    log.work(0.3, 0.7, 5)  # overlaps: busy from 0.4, bins 1 (0.1) and 2 (0.2)
    log.work(0.5, 0.6, 2)  # inside the busy time: no busy time of its own
    log.work(1.2, 1.4, 1)  # after a gap: bin 3 busy 0.2
    return log


def test_busy_time_is_the_union_of_work_spans_and_tokens_count_at_the_end() -> None:
    series = _log_with_work().series(4)
    assert series["busy"].tolist() == pytest.approx([0.4, 0.2, 0.2, 0.0])
    assert series["tokens"].tolist() == [10.0, 7.0, 1.0, 0.0]


def test_undone_work_gives_back_its_bins_and_the_busy_end() -> None:
    log = _log_with_work()
    log.work(1.3, 1.6, 4)
    log.undo_work()
    log.work(1.45, 1.55, 3)  # busy from 1.45 (the undone work's end no longer counts)
    series = log.series(4)
    assert series["busy"].tolist() == pytest.approx([0.4, 0.2, 0.25, 0.05])
    assert series["tokens"].tolist() == [10.0, 7.0, 1.0, 3.0]
    assert log.as_dict()["busy_s"] == pytest.approx(0.9)


def test_state_per_bin_is_the_latest_change_and_a_sent_log_keeps_logging() -> None:
    log = UnitLog(0.5)
    log.state(0.2, 1, 0, 0.0)
    log.state(0.6, 2, 1, 5.0)
    log.state(0.6, 3, 1, 6.0)  # same time: the later one counts
    sent = pickle.loads(pickle.dumps(log))
    sent.state(1.7, 0, 0, 0.0)  # logged into the copy, not the original
    series = sent.series(4)
    assert series["queue_depth"].tolist() == [1.0, 3.0, 3.0, 0.0]
    assert series["kv_used_bytes"].tolist() == [0.0, 6.0, 6.0, 0.0]
    assert log.series(4)["queue_depth"].tolist() == [1.0, 3.0, 3.0, 3.0]

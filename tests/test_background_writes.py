"""The results' worker thread (``experiments/results/background.py``): calls run in the order
handed in, a wait for one table waits for its calls, and a call's error reaches the caller."""

from __future__ import annotations

import errno
import threading

import pytest

from disagg.experiments.results.background import OrderedWrites


def test_calls_run_in_order_on_one_other_thread() -> None:
    done: list[tuple[str, int]] = []
    threads: set[int] = set()

    def call(key: str, i: int) -> None:
        threads.add(threading.get_ident())
        done.append((key, i))

    writes = OrderedWrites(max_pending=3)
    for i in range(10):
        writes.submit("a" if i % 2 else "b", call, "a" if i % 2 else "b", i)
    writes.wait()
    assert done == [("a" if i % 2 else "b", i) for i in range(10)]
    assert len(threads) == 1 and threading.get_ident() not in threads
    writes.close()


def test_waiting_for_a_key_waits_for_its_last_call() -> None:
    go = threading.Event()
    done: list[str] = []
    writes = OrderedWrites(max_pending=4)
    writes.submit("requests", done.append, "requests")
    writes.submit("timeseries", go.wait)  # held until the test lets it go
    writes.wait("requests")  # does not wait for the held call
    assert done == ["requests"]
    go.set()
    writes.wait("timeseries")
    writes.close()


def test_a_calls_error_reaches_the_next_wait_and_the_next_submit() -> None:
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writes = OrderedWrites()
    writes.submit("requests", full)
    with pytest.raises(OSError, match="No space left"):
        writes.wait()
    writes.submit("requests", full)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(3):  # at a later submit once it has run, else at the wait
            writes.submit("timeseries", lambda: None)
        writes.wait()
    writes.close()


def test_close_runs_what_is_queued_without_raising() -> None:
    done: list[int] = []
    go = threading.Event()

    def full() -> None:
        go.wait()  # held until the calls after it are queued
        raise OSError(errno.EIO, "I/O error")

    writes = OrderedWrites(max_pending=5)
    writes.submit("a", full)
    for i in range(3):
        writes.submit("a", done.append, i)
    go.set()
    writes.close()  # the error stays unraised: close is for a run that already ended
    assert done == [0, 1, 2]
    writes.close()  # a second close does nothing

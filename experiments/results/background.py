"""Parquet writes off the run's thread. Arrow encodes, compresses and writes a row group without
holding Python's GIL, so a worker thread doing it overlaps the run's Python work on another core
(the whole Mooncake trace: ≈ 80 ms of writes, ≈ 30 ms of them while the engine runs; see
docs/performance.md). The calls run one at a time, in the order they were handed in, so a
table's row groups stay in order and its close comes after them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MAX_PENDING = 2
"""Calls handed in and not yet finished before :meth:`OrderedWrites.submit` waits for the oldest:
each holds a converted row group (≤ ``ROW_GROUP_ROWS`` rows), so memory stays bounded if the disk
is slower than the run."""


class OrderedWrites:
    """Calls run in order on one worker thread. A call's error (an ``OSError`` of a full disk,
    say) is raised in the caller's thread by the next :meth:`submit` or :meth:`wait`, so it
    stops the run where a synchronous write would have; :meth:`close` waits for the rest."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._pool: ThreadPoolExecutor | None = None  # the worker starts with the first call
        self._pending: deque[tuple[str, Future[Any]]] = deque()

    def submit(self, key: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``call(*args, **kwargs)`` after every call handed in before; ``key`` names what
        it writes (:meth:`wait` waits for one key's calls)."""
        self._reap()
        while len(self._pending) >= self.max_pending:
            self._pending.popleft()[1].result()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disagg-results")
        self._pending.append((key, self._pool.submit(call, *args, **kwargs)))

    def wait(self, key: str | None = None) -> None:
        """Return once every call handed in for ``key`` (None: every call) has run; raise the
        first error among the calls that ran."""
        last = max((i for i, (k, _) in enumerate(self._pending) if key is None or k == key),
                   default=-1)
        for _ in range(last + 1):
            self._pending.popleft()[1].result()
        self._reap()

    def _reap(self) -> None:
        """Drop the finished calls at the front, raising the first error among them."""
        while self._pending and self._pending[0][1].done():
            self._pending.popleft()[1].result()

    def close(self, cancel: bool = False) -> None:
        """End the worker thread once the calls still running or queued have run (``cancel``:
        the queued ones are dropped, the running one ends), without raising their errors: a
        caller that needs them raised calls :meth:`wait` first."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

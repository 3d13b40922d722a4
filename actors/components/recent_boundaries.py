"""The latest iteration boundaries of a decode unit (emu s), for requests that join late, with
values that go with each (the batch that ran from it).

A buffer twice the window long, appended to in place and shifted down only when full, so
remembering k boundaries costs a copy of k floats (not of the whole window, as a concatenation
per iteration run did). The boundaries are row 0; further rows hold their values.
"""

from __future__ import annotations

import numpy as np


class RecentBoundaries:
    """The last ``limit`` boundaries appended (ascending emu s), each with ``rows - 1`` values."""

    def __init__(self, limit: int, rows: int = 1) -> None:
        self.limit = limit
        self._buf = np.empty((rows, 2 * limit))
        self._n = 0

    def extend(self, bounds: np.ndarray, *runs: tuple[float, float]) -> None:
        """Remember ``bounds`` (later than every boundary remembered) and, per further row, a
        run of values for them: ``(value from each but the last, value from the last)``."""
        k = len(bounds)
        if k >= self.limit:
            self._buf[0, : self.limit] = bounds[k - self.limit:]
            self._n = self.limit
            where = slice(0, self.limit)
        else:
            where = self._slot(k)
            self._buf[0, where] = bounds
        for row, (value, last) in enumerate(runs, 1):
            self._buf[row, where] = value
            self._buf[row, self._n - 1] = last

    def _slot(self, k: int) -> slice:
        """Where ``k`` (< limit) new boundaries go, shifting the window down first when full."""
        if self._n + k > self._buf.shape[1]:
            keep = self.limit - k
            self._buf[:, :keep] = self._buf[:, self._n - keep: self._n]
            self._n = keep
        start = self._n
        self._n += k
        return slice(start, self._n)

    def last(self) -> float | None:
        """The latest boundary remembered (None: none yet)."""
        return float(self._buf[0, self._n - 1]) if self._n else None

    def add_to_last(self, row: int, amount: float) -> None:
        """Add ``amount`` to row ``row``'s value of the latest boundary (one remembered)."""
        self._buf[row, self._n - 1] += amount

    def view(self, row: int = 0) -> np.ndarray:
        """The remembered boundaries (row 0) or their values, oldest first (a view: valid until
        the next ``extend``)."""
        return self._buf[row, max(0, self._n - self.limit): self._n]

"""The latest iteration boundaries of a decode unit (emu s), for requests that join late.

A buffer twice the window long, appended to in place and shifted down only when full, so
remembering k boundaries costs a copy of k floats (not of the whole window, as a concatenation
per iteration run did).
"""

from __future__ import annotations

import numpy as np


class RecentBoundaries:
    """The last ``limit`` boundaries appended (ascending emu s)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = np.empty(2 * limit)
        self._n = 0

    def extend(self, bounds: np.ndarray) -> None:
        """Remember ``bounds`` (later than every boundary remembered)."""
        k = len(bounds)
        if k >= self.limit:
            self._buf[: self.limit] = bounds[k - self.limit:]
            self._n = self.limit
            return
        self._buf[self._slot(k)] = bounds

    def extend_run(self, k: int, value: float, last: float) -> None:
        """Remember ``k`` (>= 1) values: ``value`` each but the last, which is ``last`` (what
        ``extend`` of such an array does, without building it)."""
        if k >= self.limit:
            self._buf[: self.limit] = value
            self._n = self.limit
        else:
            self._buf[self._slot(k)] = value
        self._buf[self._n - 1] = last

    def _slot(self, k: int) -> slice:
        """Where ``k`` (< limit) new values go, shifting the window down first when full."""
        if self._n + k > len(self._buf):
            keep = self.limit - k
            self._buf[:keep] = self._buf[self._n - keep: self._n]
            self._n = keep
        start = self._n
        self._n += k
        return slice(start, self._n)

    def view(self) -> np.ndarray:
        """The remembered boundaries, oldest first (a view: valid until the next ``extend``)."""
        return self._buf[max(0, self._n - self.limit): self._n]

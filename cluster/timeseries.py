"""Histories folded onto the timeseries grid, and handed out bin by bin once final, so a
component holds only a window of recent bins whatever the run's length.

The grid is ``step, 2 step, ...`` (emu s); bin k (k >= 1) covers (g_{k-1}, g_k] with g_k = k step.
A step function's value at g_k is its latest change at or before g_k (ties: the later change);
an integral per bin is accumulated from the intervals it covers. ``pop_before(k)`` hands out
bins below k and forgets them; an event that still lands in a handed-out bin (it came later than
the owner's frontier promised) is counted in ``late`` and folded into the first bin held.

Chosen for speed: an event is only appended to a flat list (a unit logs ~15 a request); the
pending events are folded onto the bins with a few numpy operations when bins are read or
handed out (or ``_PENDING`` have gathered), by the same rules and, for sums, the same float
additions in the same order as adding them one at a time (``np.add.at`` adds in index order),
so the bins are bit for bit those of an event-by-event fold.
"""

from __future__ import annotations

import math
from math import ceil
from typing import Any

import numpy as np

_PENDING = 8192  # events gathered at most before they are folded (bounds memory)


def bin_of(t: float, step_s: float) -> int:
    """The index k >= 1 of the first grid point g_k = k step at or after ``t``."""
    k = ceil(t / step_s)
    if k < 1:  # (a comparison, not max(): called for most events)
        k = 1
    while k > 1 and t <= step_s * (k - 1):
        k -= 1
    while t > step_s * k:
        k += 1
    return k


def bins_of(t: np.ndarray, step_s: float) -> np.ndarray:
    """:func:`bin_of` of every time in ``t`` (the same rule, the same float products)."""
    if not np.isfinite(t).all():
        raise ValueError(f"event times must be finite, got {t[~np.isfinite(t)][0]}")
    k = np.ceil(t / step_s).astype(np.int64)
    np.maximum(k, 1, out=k)
    while (down := (k > 1) & (t <= step_s * (k - 1))).any():
        k -= down
    while (up := t > step_s * k).any():
        k += up
    return k


def _floats(values: list[float]) -> np.ndarray:
    """``values`` as a float64 array (fromiter with a count: cheaper than np.array on a list)."""
    return np.fromiter(values, np.float64, len(values))


def final_bins(frontier_s: float, step_s: float) -> int:
    """The first bin not yet final when nothing can happen before ``frontier_s`` any more:
    every bin whose end g_k <= frontier is final."""
    return max(1, math.floor(frontier_s / step_s) + 1) if frontier_s > 0 else 1


class _Bins:
    """Rows of floats over bins base, base+1, ... (a numpy array grown on demand, each row
    starting as ``fill``), which bins were touched and how many events came late."""

    def __init__(self, fill: float | tuple[float, ...]) -> None:
        self.fill = np.asarray(fill, dtype=np.float64)
        self.data = np.full((16, *self.fill.shape), self.fill)
        self.base = 1  # the first bin held
        self.end = 1  # one past the last bin touched
        self.late = 0  # events that landed in bins already handed out

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled (a unit's log sent from its actor): Ray hands numpy arrays out as read-only
        # views of its buffers, and the bins are written in place
        self.__dict__.update(state)
        self.data = np.array(self.data)

    def _cover(self, n: int) -> None:
        """Hold rows up to bin ``n``."""
        size = n - self.base + 1
        if size > len(self.data):
            grown = np.full((max(size, 2 * len(self.data)), *self.fill.shape), self.fill)
            grown[: len(self.data)] = self.data
            self.data = grown

    def place(self, k: np.ndarray) -> np.ndarray:
        """Rows of bins ``k`` (>= 1), touched; bins already handed out count as late and map to
        ``base``."""
        early = k < self.base
        if early.any():
            self.late += int(early.sum())
            k = np.maximum(k, self.base)
        top = int(k.max())
        self._cover(top)
        if top >= self.end:
            self.end = top + 1
        return k - self.base

    def upto(self, n: int, touch: bool = True) -> np.ndarray:
        """A copy of the rows of bins base..n (``fill`` beyond what was touched); empty if
        n < base. ``touch``: bin n counts as touched."""
        if n < self.base:
            return np.zeros((0, *self.fill.shape))
        self._cover(n)
        if touch and n >= self.end:
            self.end = n + 1
        return self.data[: n - self.base + 1].copy()

    def pop_before(self, k: int) -> np.ndarray:
        """Hand out the rows of bins base..k-1 and forget them."""
        if k <= self.base:
            return np.zeros((0, *self.fill.shape))
        out = self.upto(k - 1)
        rest = self.data[len(out):]
        self.data = np.full((max(len(rest), 16), *self.fill.shape), self.fill)
        self.data[: len(rest)] = rest
        self.base = k
        return out


class _History:
    """What both histories say of their bins (pending events folded first)."""

    _bins: _Bins

    def _fold(self) -> None:
        raise NotImplementedError

    @property
    def base(self) -> int:
        """The first bin held."""
        return self._bins.base

    @property
    def end(self) -> int:
        """One past the last bin touched."""
        self._fold()
        return self._bins.end

    @property
    def late(self) -> int:
        """Events that landed in bins already handed out."""
        self._fold()
        return self._bins.late


class SteppedValues(_History):
    """Several step functions changing together (e.g. queue depth, batch size, KV bytes):
    per bin, the latest change (by time, then order of arrival)."""

    def __init__(self, step_s: float, width: int) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1 (functions), got {width}")
        self.step_s = step_s
        self.width = width
        # per bin: the time of its latest change, then the functions' values after it
        self._bins = _Bins((-math.inf,) + (math.nan,) * width)
        self._carry = [0.0] * width  # values at the last bin handed out
        self._times: list[float] = []  # changes not yet folded: their times,
        self._values: list[float] = []  # and their values, ``width`` each

    def change(self, t: float, *values: float) -> None:
        """The functions take ``values`` from emu time ``t`` on."""
        self._times.append(t)
        self._values += values
        if len(self._times) >= _PENDING:
            self._fold()

    def _fold(self) -> None:
        """Fold the pending changes into their bins: each bin keeps its latest change by time,
        then arrival (the pending ones arrived after those folded before)."""
        if not self._times:
            return
        t = _floats(self._times)
        values = _floats(self._values).reshape(len(t), self.width)
        self._times, self._values = [], []
        rows = self._bins.place(bins_of(t, self.step_s))
        if (t[1:] >= t[:-1]).all():  # the usual case: in time order, so rows ascending too
            order = None
            ends = rows[1:] != rows[:-1]  # the last change of each row
        else:
            order = np.lexsort((t, rows))  # stable: by row, time, then arrival
            ends = rows[order[1:]] != rows[order[:-1]]
        won = np.append(np.flatnonzero(ends), len(t) - 1)
        if order is not None:
            won = order[won]
        won = won[t[won] >= self._bins.data[rows[won], 0]]  # not before the row's own change
        self._bins.data[rows[won], 0] = t[won]
        self._bins.data[rows[won], 1:] = values[won]

    def _sample(self, rows: np.ndarray) -> list[np.ndarray]:
        out = []
        for j in range(self.width):
            v = rows[:, j + 1]
            idx = np.maximum.accumulate(np.where(~np.isnan(v), np.arange(len(v)), -1))
            out.append(np.where(idx >= 0, v[np.maximum(idx, 0)], self._carry[j]))
        return out

    def sampled(self, n: int) -> list[np.ndarray]:
        """Each function's value at g_base..g_n (0 before its first change)."""
        self._fold()
        return self._sample(self._bins.upto(n, touch=False))

    def pop_before(self, k: int) -> list[np.ndarray]:
        """Each function's value at g_base..g_{k-1}; those bins are forgotten."""
        self._fold()
        out = self._sample(self._bins.pop_before(k))
        self._carry = [float(v[-1]) if len(v) else c for v, c in zip(out, self._carry, strict=True)]
        return out


class BinnedIntegral(_History):
    """The integral per bin of a quantity that is ``rate`` over intervals (emu s x rate), and
    amounts at points in time."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self._bins = _Bins(0.0)
        self.total = 0.0
        self.last_s = 0.0  # latest time anything was added at
        # not yet folded: (start, end, rate) per interval, (t, t, amount) per point (an interval
        # is never empty)
        self._events: list[float] = []

    def interval(self, start_s: float, end_s: float, rate: float = 1.0) -> None:
        """Add ``rate`` over [start_s, end_s]."""
        if end_s <= start_s or rate == 0.0:
            return
        self.total += rate * (end_s - start_s)
        if end_s > self.last_s:
            self.last_s = end_s
        self._events += (start_s, end_s, rate)
        if len(self._events) >= 3 * _PENDING:
            self._fold()

    def point(self, t: float, amount: float) -> None:
        """Add ``amount`` at emu time ``t`` (counted in the bin that holds ``t``)."""
        self.total += amount
        if t > self.last_s:
            self.last_s = t
        self._events += (t, t, amount)
        if len(self._events) >= 3 * _PENDING:
            self._fold()

    def _fold(self) -> None:
        """Add the pending events to their bins: an interval's pieces bin by bin (``rate`` x
        the part of the bin it covers, the bin edges as ``step * k``), a point's amount to its
        bin, in the order they came."""
        if not self._events:
            return
        events = _floats(self._events).reshape(-1, 3)
        self._events = []
        start, end, rate = events.T
        k0, k1 = bins_of(events[:, :2], self.step_s).T
        point = start == end
        if (k0 == k1).all():  # the usual case: each event within one bin
            k = k0
            value = np.where(point, rate, rate * (end - start))
        else:
            pieces = k1 - k0 + 1
            ev = np.repeat(np.arange(len(k0)), pieces)
            k = k0[ev] + np.arange(len(ev)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
            lo = np.where(k == k0[ev], start[ev], self.step_s * (k - 1))
            hi = np.where(k == k1[ev], end[ev], self.step_s * k)
            keep = (hi > lo) | point[ev]  # an interval starting on a grid point: no empty piece
            k, value = k[keep], np.where(point[ev], rate[ev], rate[ev] * (hi - lo))[keep]
        rows = self._bins.place(k)  # (first: it may grow the array)
        np.add.at(self._bins.data, rows, value)

    def per_bin(self, n: int) -> np.ndarray:
        """The integral over each of bins base..n."""
        self._fold()
        return self._bins.upto(n)

    def pop_before(self, k: int) -> np.ndarray:
        """The integral over each of bins base..k-1; those bins are forgotten."""
        self._fold()
        return self._bins.pop_before(k)

    def until(self, end_s: float) -> float:
        """The integral over [0, end_s]: exact when nothing lies after ``end_s`` (the usual
        case: the run ends with its last work), else the held bins after it are taken off (the
        bin holding ``end_s`` pro rata)."""
        if self.last_s <= end_s:
            return self.total
        self._fold()
        k = bin_of(end_s, self.step_s)
        held = self._bins.upto(max(self._bins.end - 1, k))
        i = k - self._bins.base
        if i < 0:
            return self.total - float(held.sum())
        frac = min(1.0, max(0.0, (end_s - self.step_s * (k - 1)) / self.step_s))
        return self.total - float(held[i + 1:].sum()) - float(held[i]) * (1 - frac)

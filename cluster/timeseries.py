"""Histories folded onto the timeseries grid as events happen, and handed out bin by bin once
final, so a component holds only a window of recent bins whatever the run's length.

The grid is ``step, 2 step, ...`` (emu s); bin k (k >= 1) covers (g_{k-1}, g_k] with g_k = k step.
A step function's value at g_k is its latest change at or before g_k (ties: the later change);
an integral per bin is accumulated from the intervals it covers. ``pop_before(k)`` hands out
bins below k and forgets them; an event that still lands in a handed-out bin (it came later than
the owner's frontier promised) is counted in ``late`` and folded into the first bin held.
"""

from __future__ import annotations

import math
from math import ceil

import numpy as np


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


def final_bins(frontier_s: float, step_s: float) -> int:
    """The first bin not yet final when nothing can happen before ``frontier_s`` any more:
    every bin whose end g_k <= frontier is final."""
    return max(1, math.floor(frontier_s / step_s) + 1) if frontier_s > 0 else 1


class _Window:
    """Floats over bins base, base+1, ... in a Python list grown on demand (amortised
    doubling): bins are read and written one at a time, which a list does several times faster
    than a numpy array; they become arrays only when handed out."""

    def __init__(self, fill: float = 0.0) -> None:
        self.fill = fill
        self.data: list[float] = [fill] * 16
        self.base = 1  # the first bin held
        self.end = 1  # one past the last bin touched
        self.late = 0  # events that landed in bins already handed out

    def index(self, k: int) -> int:
        """Position of bin ``k`` in ``data`` (a bin already handed out maps to ``base``)."""
        if k < self.base:
            self.late += 1
            k = self.base
        i = k - self.base
        if i >= len(self.data):
            self.data.extend([self.fill] * (max(i + 1, 2 * len(self.data)) - len(self.data)))
        if k >= self.end:
            self.end = k + 1
        return i

    def upto(self, n: int) -> np.ndarray:
        """Bins base..n (filled beyond what was touched); empty if n < base."""
        if n < self.base:
            return np.zeros(0)
        self.index(n)
        return np.array(self.data[: n - self.base + 1], dtype=np.float64)

    def pop_before(self, k: int) -> np.ndarray:
        """Hand out bins base..k-1 and forget them."""
        if k <= self.base:
            return np.zeros(0)
        out = self.upto(k - 1)
        rest = self.data[len(out):]
        self.data = rest + [self.fill] * max(16 - len(rest), 0)
        self.base = k
        return out


class SteppedValues:
    """Several step functions changing together (e.g. queue depth, batch size, KV bytes):
    per bin, the latest change (by time, then order of arrival).

    The newest change's bin is held in plain Python (``_held_*``) and written to the arrays only
    when a change lands in another bin or the bins are read: a unit changes state many times per
    bin, and a held change costs one comparison. The held change always came after everything
    written, so "latest by time, then arrival" is kept by comparing times alone."""

    def __init__(self, step_s: float, width: int) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1 (functions), got {width}")
        self.step_s = step_s
        self._t = _Window(-math.inf)
        self._values = [_Window(math.nan) for _ in range(width)]
        self._carry = [0.0] * width  # values at the last bin handed out
        self._held_k = 0  # the held bin (0: none) and its span (lo, hi], emu s
        self._held_i = 0  # its position in the windows (fixed while held: _flush before a pop)
        self._held_lo_s, self._held_hi_s = math.inf, -math.inf
        self._held_t = -math.inf
        self._held_values: tuple[float, ...] = ()

    def change(self, t: float, *values: float) -> None:
        """The functions take ``values`` from emu time ``t`` on."""
        if self._held_lo_s < t <= self._held_hi_s:  # the held bin: keep the later change
            if t >= self._held_t:
                self._held_t, self._held_values = t, values
            return
        self._flush()
        k = bin_of(t, self.step_s)
        times = self._t
        # a bin already touched and held is at k - base; else index() grows the list
        i = k - times.base if times.base <= k < times.end else times.index(k)
        if k < times.base:  # a bin already handed out: folded into the first held one
            if t >= self._t.data[i]:
                self._write(i, t, values)
            return
        self._held_k, self._held_i, self._held_t, self._held_values = k, i, t, values
        self._held_lo_s = self.step_s * (k - 1) if k > 1 else -math.inf
        self._held_hi_s = self.step_s * k

    def _write(self, i: int, t: float, values: tuple[float, ...]) -> None:
        self._t.data[i] = t
        windows = self._values
        # the value windows grow, are touched and are popped together (same base, length and
        # end as one another): checked on the first, indexed all only when it needs to grow
        first = windows[0]
        if i >= len(first.data) or i + first.base >= first.end:
            for window in windows:
                window.index(window.base + i)  # grows it, marks it touched
        for window, v in zip(windows, values, strict=True):
            window.data[i] = v

    def _flush(self) -> None:
        """Write the held change to its bin (if it is the bin's latest) and hold none."""
        if self._held_k == 0:
            return
        i = self._held_i  # (indexed when held: no second _Window.index call)
        if self._held_t >= self._t.data[i]:
            self._write(i, self._held_t, self._held_values)
        self._held_k = 0
        self._held_lo_s, self._held_hi_s = math.inf, -math.inf

    @property
    def base(self) -> int:
        """The first bin held."""
        return self._t.base

    @property
    def end(self) -> int:
        """One past the last bin touched."""
        return self._t.end

    def _sample(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for j, v in enumerate(raw):
            idx = np.maximum.accumulate(np.where(~np.isnan(v), np.arange(len(v)), -1))
            out.append(np.where(idx >= 0, v[np.maximum(idx, 0)], self._carry[j]))
        return out

    def sampled(self, n: int) -> list[np.ndarray]:
        """Each function's value at g_base..g_n (0 before its first change)."""
        self._flush()
        return self._sample([w.upto(n) for w in self._values])

    def pop_before(self, k: int) -> list[np.ndarray]:
        """Each function's value at g_base..g_{k-1}; those bins are forgotten."""
        self._flush()
        self._t.pop_before(k)
        out = self._sample([w.pop_before(k) for w in self._values])
        self._carry = [float(v[-1]) if len(v) else c for v, c in zip(out, self._carry, strict=True)]
        return out


class BinnedIntegral:
    """The integral per bin of a quantity that is ``rate`` over intervals (emu s x rate).

    The latest bin added to is held as a Python float (``_held_v``, the bin's sum so far) and
    written back when an addition lands elsewhere or the bins are read: the same additions in
    the same order as on the array, so the sums are bit for bit the same."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self._bins = _Window()
        self.total = 0.0
        self.last_s = 0.0  # latest time anything was added at
        self._held_k = 0  # the held bin (0: none) and its span (lo, hi], emu s
        self._held_i = 0  # its position in the window (fixed while held: _flush before a pop)
        self._held_lo_s, self._held_hi_s = math.inf, -math.inf
        self._held_v = 0.0

    @property
    def base(self) -> int:
        """The first bin held."""
        self._flush()
        return self._bins.base

    @property
    def end(self) -> int:
        """One past the last bin touched."""
        return self._bins.end

    def _flush(self) -> None:
        if self._held_k:
            self._bins.data[self._held_i] = self._held_v
            self._held_k = 0
            self._held_lo_s, self._held_hi_s = math.inf, -math.inf

    def _hold(self, k: int) -> None:
        """Hold bin ``k`` (not yet handed out) in Python."""
        bins = self._bins
        self._held_k = k
        # a bin already touched and held is at k - base; else index() grows the list
        self._held_i = i = k - bins.base if bins.base <= k < bins.end else bins.index(k)
        self._held_v = bins.data[i]
        self._held_lo_s = self.step_s * (k - 1) if k > 1 else -math.inf
        self._held_hi_s = self.step_s * k

    def interval(self, start_s: float, end_s: float, rate: float = 1.0) -> None:
        """Add ``rate`` over [start_s, end_s]."""
        if end_s <= start_s or rate == 0.0:
            return
        self.total += rate * (end_s - start_s)
        if end_s > self.last_s:
            self.last_s = end_s
        if self._held_lo_s < start_s:
            if end_s <= self._held_hi_s:  # within the held bin
                self._held_v += rate * (end_s - start_s)
                return
            if start_s <= self._held_hi_s:  # from the held bin on: its part first, as below
                lo = self._held_hi_s
                self._held_v += rate * (lo - start_s)
                k = self._held_k + 1
                self._flush()
                self._spread(lo, end_s, rate, k)
                return
        self._flush()
        self._spread(start_s, end_s, rate, bin_of(start_s, self.step_s) if start_s > 0 else 1)

    def _spread(self, lo: float, end_s: float, rate: float, k: int) -> None:
        """Add ``rate`` over [lo, end_s] bin by bin from bin ``k`` (the one holding ``lo``) and
        hold the last bin touched."""
        bins, step_s = self._bins, self.step_s
        while lo < end_s:
            hi = step_s * k
            if hi > end_s:
                hi = end_s
            if hi > lo:
                # a bin already touched and held is bins.data[k - base]; else index() grows
                i = k - bins.base if bins.base <= k < bins.end else bins.index(k)
                bins.data[i] += rate * (hi - lo)
                lo = hi
            k += 1
        if k - 1 >= bins.base:
            self._hold(k - 1)

    def point(self, t: float, amount: float) -> None:
        """Add ``amount`` at emu time ``t`` (counted in the bin that holds ``t``)."""
        self.total += amount
        if t > self.last_s:
            self.last_s = t
        if self._held_lo_s < t <= self._held_hi_s:
            self._held_v += amount
            return
        self._flush()
        k = bin_of(t, self.step_s)
        if k < self._bins.base:  # a bin already handed out: folded into the first held one
            i = self._bins.index(k)
            self._bins.data[i] += amount
            return
        self._hold(k)
        self._held_v += amount

    def per_bin(self, n: int) -> np.ndarray:
        """The integral over each of bins base..n."""
        self._flush()
        return self._bins.upto(n)

    def pop_before(self, k: int) -> np.ndarray:
        """The integral over each of bins base..k-1; those bins are forgotten."""
        self._flush()
        return self._bins.pop_before(k)

    def until(self, end_s: float) -> float:
        """The integral over [0, end_s]: exact when nothing lies after ``end_s`` (the usual
        case: the run ends with its last work), else the held bins after it are taken off (the
        bin holding ``end_s`` pro rata)."""
        if self.last_s <= end_s:
            return self.total
        self._flush()
        k = bin_of(end_s, self.step_s)
        held = self._bins.upto(max(self._bins.end - 1, k))
        i = k - self._bins.base
        if i < 0:
            return self.total - float(held.sum())
        frac = min(1.0, max(0.0, (end_s - self.step_s * (k - 1)) / self.step_s))
        return self.total - float(held[i + 1:].sum()) - float(held[i]) * (1 - frac)

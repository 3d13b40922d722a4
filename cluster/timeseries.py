"""Histories folded onto the timeseries grid as events happen, so memory grows with the run's
duration over the sample interval (the size of ``timeseries.parquet`` itself), not with events.

The grid is ``step, 2 step, ...`` (emu s); bin k (k >= 1) covers (g_{k-1}, g_k] with g_k = k step.
A step function's value at g_k is its latest change at or before g_k (ties: the later change);
an integral per bin is accumulated from the intervals it covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def bin_of(t: float, step_s: float) -> int:
    """The index k >= 1 of the first grid point g_k = k step at or after ``t``."""
    k = max(1, math.ceil(t / step_s))
    while k > 1 and t <= step_s * (k - 1):
        k -= 1
    while t > step_s * k:
        k += 1
    return k


class _Grow:
    """A float64 array indexed by bin, grown on demand (amortised doubling)."""

    def __init__(self, fill: float = 0.0) -> None:
        self.fill = fill
        self.data = np.full(16, fill)
        self.n = 0  # bins 0..n-1 touched

    def at(self, k: int) -> None:
        if k >= len(self.data):
            grown = np.full(max(k + 1, 2 * len(self.data)), self.fill)
            grown[: len(self.data)] = self.data
            self.data = grown
        self.n = max(self.n, k + 1)

    def add(self, k: int, value: float) -> None:
        self.at(k)
        self.data[k] += value

    def upto(self, n: int) -> np.ndarray:
        """Bins 1..n (filled beyond what was touched)."""
        self.at(n)
        return self.data[1 : n + 1].copy()


@dataclass
class SteppedValues:
    """Several step functions changing together (e.g. queue depth, batch size, KV bytes):
    per bin, the latest change (by time, then order of arrival)."""

    step_s: float
    width: int
    _t: _Grow = field(default_factory=lambda: _Grow(-math.inf))
    _seq: _Grow = field(default_factory=lambda: _Grow(-1.0))
    _values: list[_Grow] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self._values = [_Grow(math.nan) for _ in range(self.width)]

    def change(self, t: float, *values: float) -> None:
        """The functions take ``values`` from emu time ``t`` on."""
        k = bin_of(t, self.step_s)
        self._t.at(k)
        self._seq.at(k)
        self._count += 1
        if (t, self._count) >= (self._t.data[k], self._seq.data[k]):
            self._t.data[k], self._seq.data[k] = t, self._count
            for grow, v in zip(self._values, values, strict=True):
                grow.at(k)
                grow.data[k] = v

    def sampled(self, n: int) -> list[np.ndarray]:
        """Each function's value at g_1..g_n (0 before its first change)."""
        out = []
        for grow in self._values:
            v = grow.upto(n)
            idx = np.where(~np.isnan(v), np.arange(n), -1)
            idx = np.maximum.accumulate(idx)
            out.append(np.where(idx >= 0, v[np.maximum(idx, 0)], 0.0))
        return out


@dataclass
class BinnedIntegral:
    """The integral per bin of a quantity that is ``rate`` over intervals (emu s x rate)."""

    step_s: float
    _bins: _Grow = field(default_factory=_Grow)
    total: float = 0.0
    last_s: float = 0.0  # latest time anything was added at

    def interval(self, start_s: float, end_s: float, rate: float = 1.0) -> None:
        """Add ``rate`` over [start_s, end_s]."""
        if end_s <= start_s or rate == 0.0:
            return
        self.total += rate * (end_s - start_s)
        self.last_s = max(self.last_s, end_s)
        k = bin_of(start_s, self.step_s) if start_s > 0 else 1
        lo = start_s
        while lo < end_s:
            hi = min(end_s, self.step_s * k)
            if hi > lo:
                self._bins.add(k, rate * (hi - lo))
            lo = max(lo, hi)
            k += 1

    def point(self, t: float, amount: float) -> None:
        """Add ``amount`` at emu time ``t`` (counted in the bin that holds ``t``)."""
        self._bins.add(bin_of(t, self.step_s), amount)
        self.total += amount
        self.last_s = max(self.last_s, t)

    def per_bin(self, n: int) -> np.ndarray:
        """The integral over each of bins 1..n."""
        return self._bins.upto(n)

    def until(self, end_s: float) -> float:
        """The integral over [0, end_s]: exact when nothing lies after ``end_s`` (the usual
        case: the run ends with its last work), else the last bin's share is pro rata."""
        if self.last_s <= end_s:
            return self.total
        k = bin_of(end_s, self.step_s)
        bins = self._bins.upto(k)
        frac = (end_s - self.step_s * (k - 1)) / self.step_s
        return float(bins[: k - 1].sum() + bins[k - 1] * min(1.0, max(0.0, frac)))

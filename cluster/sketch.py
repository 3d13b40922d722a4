"""A mergeable, bounded-memory quantile sketch for per-event figures that grow with a run (lag,
inter-token latency): exact while small, then a log-bucket histogram with bounded relative error.

Up to :data:`EXACT_LIMIT` weighted values are kept exactly, so quantiles of small runs equal the
exact (weighted) quantiles. Past that the sketch folds every value into logarithmic buckets
(ratio ``(1 + alpha) / (1 - alpha)`` between bucket edges, like DDSketch, each bucket also keeping
its weight, smallest and largest value): a quantile is then reported within relative error
``alpha`` of a value of the data, and memory is bounded by the number of buckets
(~ log(max/min) / (2 alpha)), not by the number of values. The count, the total weight and the
weighted sum, and so the mean, stay exact.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from disagg.cluster.sketch_keys import (
    ALPHA,
    GAMMA,
    ZERO_KEY,
    run_buckets,
    value_buckets,
)

__all__ = ["ALPHA", "EXACT_LIMIT", "QuantileSketch"]

EXACT_LIMIT = 65_536
"""Values kept exactly before the sketch switches to buckets."""
_LOOSE = 4096  # single values buffered before they are folded in

Bucket = tuple[float, float, float]  # (weight, smallest value, largest value)
Weights = np.ndarray | tuple[float, float] | None  # per value; (first, each other); None: 1 each


class QuantileSketch:
    """Weighted values (non-negative, e.g. seconds) with exact count, total weight and mean, and
    quantiles exact up to :data:`EXACT_LIMIT` values, within relative error :data:`ALPHA` beyond."""

    def __init__(self) -> None:
        self._values: list[np.ndarray] = []
        self._weights: list[Weights] = []
        self._held = 0
        self._loose: list[float] = []  # single weight-1 values not yet folded in
        self._buckets: _Buckets | None = None
        self._bucketed = (0, 0.0, 0.0)  # (count, total weight, weighted sum) in buckets

    def add(self, value: float) -> None:
        """Add one value of weight 1 (buffered: cheap per call)."""
        self._loose.append(value)
        if len(self._loose) >= _LOOSE:
            self._settle()

    def add_zeros(self, n: int) -> None:
        """:meth:`add` of 0.0, ``n`` times (in the same batches)."""
        while n > 0:
            take = min(n, max(1, _LOOSE - len(self._loose)))
            self._loose += itertools.repeat(0.0, take)
            n -= take
            if len(self._loose) >= _LOOSE:
                self._settle()

    def add_many(self, values: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add values (with weights of the same length; 1 each if None). A value of weight 0 is
        no observation (an iteration of a colocated unit with no request decoding) and is left
        out: kept, it counted in unweighted statistics and made a sketch of only such values
        have weights summing to 0."""
        values = np.asarray(values, dtype=np.float64)
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if w is not None and not (w > 0).all():
            values, w = values[w > 0], w[w > 0]
        if len(values) == 0:
            return
        self._hold(values, w)

    def add_run(self, values: np.ndarray, first_weight: float, weight: float) -> None:
        """:meth:`add_many` of ``values`` weighing ``first_weight`` the first and ``weight`` each
        the others (a run of decode iterations: the first can have fewer requests counted),
        without building the weights: they are built for all runs at once when folded."""
        if not weight > 0:
            w = np.full(len(values), float(weight))
            if len(w):
                w[0] = first_weight
            self.add_many(values, w)
            return
        if not first_weight > 0:  # no observation: left out, as add_many does
            values, first_weight = values[1:], weight
        if len(values):
            self._hold(np.asarray(values, dtype=np.float64), (float(first_weight), float(weight)))

    def _hold(self, values: np.ndarray, weights: Weights) -> None:
        self._values.append(values)
        self._weights.append(weights)
        self._held += len(values)
        if self._held > (EXACT_LIMIT if self._buckets is None else _LOOSE):
            self._to_buckets()

    def _to_buckets(self) -> None:
        """Fold every held value into the buckets (values arriving after the switch are held
        in batches of ``_LOOSE`` first, to fold them cheaply)."""
        v, w, lengths = self._held_arrays()
        self._values, self._weights, self._held = [], [], 0
        if self._buckets is None:
            self._buckets = _Buckets()
        n, tw, ws = self._bucketed
        self._bucketed = (n + len(v), tw + float(w.sum()), ws + float((v * w).sum()))
        folded = None if lengths is None else run_buckets(v, w, lengths)
        self._buckets.fold(*(value_buckets(v, w) if folded is None else folded))

    def _settle(self) -> None:
        if self._loose:
            loose, self._loose = np.array(self._loose, dtype=np.float64), []
            self.add_many(loose)
        if self._buckets is not None and self._held:
            self._to_buckets()

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        self._settle()
        v, w, _ = self._held_arrays()
        return v, w

    def _held_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The held values and their weights, and the length of each held array when every one
        is a run (:meth:`add_run`; None otherwise)."""
        if not self._values:
            return np.zeros(0), np.zeros(0), None
        v = np.concatenate(self._values)
        if all(type(b) is tuple for b in self._weights):  # runs only: their weights at once
            lengths = np.array([len(a) for a in self._values])
            w = np.repeat(np.array([b[1] for b in self._weights]), lengths)  # type: ignore[index]
            w[np.cumsum(lengths) - lengths] = [b[0] for b in self._weights]  # type: ignore[index]
            return v, w, lengths
        w = np.concatenate([_weights(a, b) for a, b in zip(self._values, self._weights,
                                                            strict=True)])
        return v, w, None

    def merge(self, other: QuantileSketch) -> None:
        """Fold ``other`` into this sketch."""
        self._settle()
        if other.exact:
            self.add_many(*other._exact())
            return
        if self._buckets is None:
            self._to_buckets()
        assert self._buckets is not None and other._buckets is not None
        self._buckets.fold(*other._buckets.arrays())
        n, tw, ws = self._bucketed
        on, otw, ows = other._bucketed
        self._bucketed = (n + on, tw + otw, ws + ows)

    @property
    def exact(self) -> bool:
        """True while every value is still held exactly."""
        self._settle()
        return self._buckets is None

    def totals(self) -> tuple[int, float, float]:
        """(count, total weight, weighted sum), exact."""
        if not self.exact:
            return self._bucketed
        v, w = self._exact()
        return len(v), float(w.sum()), float((v * w).sum())

    def mean(self) -> float | None:
        """The weighted mean (exact), None if empty."""
        _, tw, ws = self.totals()
        return ws / tw if tw > 0 else None

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, weights): the exact values, or bucket representatives with their weights —
        the bucket's centre (within relative error ``ALPHA`` of every value in it) clamped to the
        smallest and largest value it holds (so a bucket of equal values is exact)."""
        if self.exact:
            return self._exact()
        assert self._buckets is not None
        keys, weights, lows, highs = self._buckets.arrays()
        centre = np.where(keys == ZERO_KEY, 0.0, 2 * np.power(GAMMA, keys) / (GAMMA + 1))
        return np.clip(centre, lows, highs), weights

    def state(self) -> dict[str, Any]:
        """Plain data (for crossing an actor boundary); :meth:`from_state` rebuilds it."""
        v, w = self._exact()
        buckets = None if self._buckets is None else self._buckets.as_dict()
        return {"values": v, "weights": w, "buckets": buckets, "bucketed": self._bucketed}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantileSketch:
        """The sketch whose :meth:`state` this is."""
        out = cls()
        out._buckets = None if state["buckets"] is None else _Buckets.of(state["buckets"])
        out._bucketed = tuple(state["bucketed"])  # type: ignore[assignment]
        if len(state["values"]):
            out._values, out._weights = [state["values"]], [state["weights"]]
            out._held = len(state["values"])
        return out


def _weights(values: np.ndarray, weights: Weights) -> np.ndarray:
    if weights is None:
        return np.ones(len(values))
    if type(weights) is tuple:
        w = np.full(len(values), weights[1])
        w[0] = weights[0]
        return w
    return np.asarray(weights, dtype=np.float64)


class _Buckets:
    """Log buckets by key: each one's weight, smallest and largest value, in arrays over the
    range of keys seen (the zero key apart), so a batch of keys folds in with a few array
    operations — the same additions, minima and maxima per bucket as one at a time."""

    def __init__(self) -> None:
        self.first = 0  # the key at position 0
        self.w, self.lo, self.hi = np.zeros(0), np.zeros(0), np.zeros(0)  # lo > hi: never used
        self.zero: Bucket | None = None

    @classmethod
    def of(cls, buckets: dict[int, Bucket]) -> _Buckets:
        """The buckets of ``{key: (weight, smallest, largest)}`` (see :meth:`as_dict`)."""
        out = cls()
        keys = sorted(buckets)
        rows = np.array([buckets[k] for k in keys], dtype=np.float64).reshape(-1, 3)
        out.fold(np.array(keys, dtype=np.int64), rows[:, 0], rows[:, 1], rows[:, 2])
        return out

    def fold(self, keys: np.ndarray, w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Add weight ``w[i]``, smallest ``lo[i]`` and largest ``hi[i]`` to bucket ``keys[i]``
        (keys ascending, each once)."""
        if len(keys) and keys[0] == ZERO_KEY:
            old, new = self.zero, (float(w[0]), float(lo[0]), float(hi[0]))
            self.zero = new if old is None else (
                old[0] + new[0], min(old[1], new[1]), max(old[2], new[2]))
            keys, w, lo, hi = keys[1:], w[1:], lo[1:], hi[1:]
        if len(keys) == 0:
            return
        self._cover(int(keys[0]), int(keys[-1]))
        i = keys - self.first
        self.w[i] += w
        self.lo[i] = np.minimum(self.lo[i], lo)
        self.hi[i] = np.maximum(self.hi[i], hi)

    def _cover(self, low: int, high: int) -> None:
        """Grow the arrays to hold keys ``low`` to ``high``."""
        if len(self.w) == 0:
            self.first = low
        below = max(0, self.first - low)
        above = max(0, high - (self.first + len(self.w) - 1))
        if below or above:
            self.w = np.concatenate((np.zeros(below), self.w, np.zeros(above)))
            self.lo = np.concatenate((np.full(below, np.inf), self.lo, np.full(above, np.inf)))
            self.hi = np.concatenate((np.full(below, -np.inf), self.hi,
                                      np.full(above, -np.inf)))
            self.first -= below

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys ascending, weights, smallest, largest) of the buckets used."""
        used = np.flatnonzero(self.lo <= self.hi)
        keys, w, lo, hi = used + self.first, self.w[used], self.lo[used], self.hi[used]
        if self.zero is None:
            return keys, w, lo, hi
        z = self.zero
        return (np.concatenate(([ZERO_KEY], keys)), np.concatenate(([z[0]], w)),
                np.concatenate(([z[1]], lo)), np.concatenate(([z[2]], hi)))

    def as_dict(self) -> dict[int, Bucket]:
        """``{key: (weight, smallest, largest)}`` (plain data)."""
        keys, w, lo, hi = (a.tolist() for a in self.arrays())
        return {k: (a, b, c) for k, a, b, c in zip(keys, w, lo, hi, strict=True)}

"""A mergeable, bounded-memory quantile sketch for per-event figures that grow with a run (lag,
inter-token latency): exact while small, then a log-bucket histogram with bounded relative error.

Up to :data:`EXACT_LIMIT` weighted values are kept exactly, so quantiles of small runs equal the
exact (weighted) quantiles. Past that the sketch folds every value into logarithmic buckets
(ratio ``(1 + alpha) / (1 - alpha)`` between bucket edges, like DDSketch, each bucket also keeping
its weight, smallest and largest value): a quantile is then reported within relative error
``alpha`` of a value of the data, and memory is bounded by the
number of buckets (~ log(max/min) / (2 alpha)), not by the number of values. The count, sum,
and so the mean, stay exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EXACT_LIMIT = 65_536
"""Values kept exactly before the sketch switches to buckets."""
ALPHA = 0.005
"""Relative accuracy of quantiles once bucketed (0.5 %)."""
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_ZERO = 1e-12  # values at or below this (s) fall in the zero bucket


class QuantileSketch:
    """Weighted values (non-negative, e.g. seconds) with exact count, sum and mean and quantiles
    exact up to :data:`EXACT_LIMIT` values, within relative error :data:`ALPHA` beyond."""

    def __init__(self) -> None:
        self._values: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self._held = 0
        self._buckets: dict[int, tuple[float, float, float]] | None = None
        self.count = 0
        self.total_weight = 0.0
        self.weighted_sum = 0.0

    def add(self, value: float, weight: float = 1.0) -> None:
        """Add one value with a weight."""
        self.add_many(np.array([value], dtype=np.float64), np.array([weight], dtype=np.float64))

    def add_many(self, values: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add values (with weights; 1 each if None)."""
        v = np.asarray(values, dtype=np.float64)
        if len(v) == 0:
            return
        w = np.ones(len(v)) if weights is None else np.broadcast_to(
            np.asarray(weights, dtype=np.float64), v.shape)
        self.count += len(v)
        self.total_weight += float(w.sum())
        self.weighted_sum += float((v * w).sum())
        if self._buckets is None:
            self._values.append(v.copy())
            self._weights.append(np.array(w, dtype=np.float64))
            self._held += len(v)
            if self._held > EXACT_LIMIT:
                self._to_buckets()
        else:
            self._bucket(v, w)

    def _to_buckets(self) -> None:
        self._buckets = {}
        v, w = self._exact()
        self._values, self._weights, self._held = [], [], 0
        self._bucket(v, w)

    def _bucket(self, v: np.ndarray, w: np.ndarray) -> None:
        assert self._buckets is not None
        keys = np.where(v > _ZERO, np.ceil(np.log(np.maximum(v, _ZERO)) / _LOG_GAMMA), -(2**31))
        uniq, inv = np.unique(keys.astype(np.int64), return_inverse=True)
        sums = np.bincount(inv, weights=w)
        lows = np.full(len(uniq), np.inf)
        highs = np.full(len(uniq), -np.inf)
        np.minimum.at(lows, inv, v)
        np.maximum.at(highs, inv, v)
        for k, s, lo, hi in zip(uniq.tolist(), sums.tolist(), lows.tolist(), highs.tolist(),
                                strict=True):
            self._fold(k, (s, lo, hi))

    def _fold(self, key: int, bucket: tuple[float, float, float]) -> None:
        """Add (weight, min, max) to bucket ``key``."""
        assert self._buckets is not None
        old = self._buckets.get(key)
        self._buckets[key] = bucket if old is None else (
            old[0] + bucket[0], min(old[1], bucket[1]), max(old[2], bucket[2]))

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._values:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self._values), np.concatenate(self._weights)

    def merge(self, other: QuantileSketch) -> None:
        """Fold ``other`` into this sketch."""
        if other._buckets is None:
            self.add_many(*other._exact())  # exact: one value per count
            return
        if self._buckets is None:
            self._to_buckets()
        assert self._buckets is not None
        for k, bucket in other._buckets.items():
            self._fold(k, bucket)
        self.count += other.count
        self.total_weight += other.total_weight
        self.weighted_sum += other.weighted_sum

    @property
    def exact(self) -> bool:
        """True while every value is still held exactly."""
        return self._buckets is None

    def mean(self) -> float | None:
        """The weighted mean (exact), None if empty."""
        return self.weighted_sum / self.total_weight if self.total_weight > 0 else None

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, weights): the exact values, or bucket representatives with their weights —
        the bucket's centre (within relative error ``ALPHA`` of every value in it) clamped to the
        smallest and largest value it holds (so a bucket of equal values is exact)."""
        if self._buckets is None:
            return self._exact()
        keys = np.array(sorted(self._buckets), dtype=np.int64)
        rows = np.array([self._buckets[k] for k in keys.tolist()], dtype=np.float64)
        centre = np.where(keys == -(2**31), 0.0, 2 * np.power(_GAMMA, keys) / (_GAMMA + 1))
        return np.clip(centre, rows[:, 1], rows[:, 2]), rows[:, 0]

    def state(self) -> dict[str, Any]:
        """Plain data (for crossing an actor boundary); :meth:`from_state` rebuilds it."""
        v, w = self._exact()
        return {"values": v, "weights": w, "buckets": self._buckets, "count": self.count,
                "total_weight": self.total_weight, "weighted_sum": self.weighted_sum}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantileSketch:
        """The sketch whose :meth:`state` this is."""
        out = cls()
        out._buckets = None if state["buckets"] is None else dict(state["buckets"])
        if len(state["values"]):
            out._values, out._weights = [state["values"]], [state["weights"]]
            out._held = len(state["values"])
        out.count, out.total_weight = state["count"], state["total_weight"]
        out.weighted_sum = state["weighted_sum"]
        return out

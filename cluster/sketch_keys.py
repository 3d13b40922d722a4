"""Bucket keys of the quantile sketch (``cluster/sketch.py``): a value's key is
``ceil(log(v) / log(GAMMA))`` (``ZERO_KEY`` at or below ``ZERO``), and a batch of values folds
into per-key weights, smallest and largest values — value by value, or, for runs of values that
each lie within one bucket, from each run's two ends."""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.005
"""Relative accuracy of quantiles once bucketed (0.5 %)."""
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
ZERO = 1e-12  # values at or below this (s) fall in the zero bucket
ZERO_KEY = -(2**31)


_DENSE_KEYS = 1 << 16  # key spans up to this are made unique by counting, not sorting


def unique_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for int keys; by counting when they span a short
    range (the usual case: one run's values cover a few hundred buckets), ~5 x faster."""
    if len(keys) == 0:
        return np.unique(keys, return_inverse=True)
    low = int(keys.min())
    span = int(keys.max()) - low + 1
    if span > _DENSE_KEYS:
        return np.unique(keys, return_inverse=True)
    offset = keys - low
    present = np.flatnonzero(np.bincount(offset, minlength=span))
    position = np.zeros(span, dtype=np.int64)
    position[present] = np.arange(len(present))
    return present + low, position[offset]


Folded = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # keys, weights, smallest, largest


def value_buckets(v: np.ndarray, w: np.ndarray) -> Folded:
    """Values ``v`` (weights ``w``) by bucket: each value's key from its own logarithm."""
    keys = np.where(v > ZERO, np.ceil(np.log(np.maximum(v, ZERO)) / LOG_GAMMA), ZERO_KEY)
    uniq, inv = unique_keys(keys.astype(np.int64))
    return uniq, np.bincount(inv, weights=w), *extremes(len(uniq), inv, v, v)


def extremes(n: int, inv: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """The smallest of ``lo`` and the largest of ``hi`` per bucket ``inv`` (of ``n``)."""
    lows = np.full(n, np.inf)
    highs = np.full(n, -np.inf)
    np.minimum.at(lows, inv, lo)
    np.maximum.at(highs, inv, hi)
    return lows, highs


_SLACK = 1e-12
"""Relative margin on a computed logarithm (thousands of times any ``np.log`` error, a few ulp)."""


def run_buckets(v: np.ndarray, w: np.ndarray, lengths: np.ndarray) -> Folded | None:
    """:func:`value_buckets` of runs of values (consecutive pieces of ``v``, ``lengths`` long)
    that each lie within one bucket (a decode advance's step durations do: ~109 values within
    ~0.5 % of each other), from the logarithms of each run's smallest and largest value only;
    None when a run may straddle buckets. The same buckets bit for bit: a computed logarithm is
    within a few ulp of the true one, which is increasing, so every value of a run whose two
    ends, widened by ``_SLACK``, fall in bucket k falls there too; the weights are summed per
    value in the same order, and minima and maxima do not depend on order."""
    starts = np.cumsum(lengths) - lengths
    lo, hi = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    if not ((lengths > 0).all() and (lo > ZERO).all() and np.isfinite(hi).all()):
        return None  # (a NaN fails the second test)
    log_lo, log_hi = np.log(lo), np.log(hi)
    keys = np.ceil((log_lo - _SLACK * np.abs(log_lo)) / LOG_GAMMA)
    if not (keys == np.ceil((log_hi + _SLACK * np.abs(log_hi)) / LOG_GAMMA)).all():
        return None
    uniq, inv = unique_keys(keys.astype(np.int64))
    sums = np.bincount(np.repeat(inv, lengths), weights=w, minlength=len(uniq))
    return uniq, sums, *extremes(len(uniq), inv, lo, hi)

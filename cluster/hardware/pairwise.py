"""Float64 sums in plain Python that add exactly as numpy does, for the performance models'
small batches (a unit's few prompts): no array for a handful of values, the same bits."""

from __future__ import annotations


def pairwise_sum(values: list[float], start: int = 0, n: int | None = None) -> float:
    """The sum of ``values[start:start + n]`` exactly as ``np.sum`` adds a float64 vector: fewer
    than 8 values in order; up to 128 in 8 interleaved partial sums, combined pairwise, then the
    remainder; more split in two halves (a multiple of 8 first) summed recursively."""
    if n is None:
        n = len(values) - start
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += values[i]
        return total
    if n > 128:
        half = n // 2
        half -= half % 8
        return pairwise_sum(values, start, half) + pairwise_sum(values, start + half, n - half)
    r = values[start:start + 8]
    blocked = n - n % 8
    for i in range(start + 8, start + blocked, 8):
        for j in range(8):
            r[j] += values[i + j]
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(start + blocked, start + n):
        total += values[i]
    return total

"""Synthetic workloads: arrival processes and length distributions, sampled from one Generator.

Each variant is a small frozen pydantic model selected by its ``kind`` (a discriminated union),
with a ``sample``/``arrival_times`` method that takes a ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedLength(_Frozen):
    """Every request has ``value`` tokens."""

    kind: Literal["fixed"] = "fixed"
    value: int = Field(gt=0, description="tokens")

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        return np.full(n, self.value, dtype=np.int64)


class UniformLength(_Frozen):
    """Integer tokens uniform on [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: int = Field(gt=0)
    high: int = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high {self.high} is below low {self.low}")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        return rng.integers(self.low, self.high + 1, size=n, dtype=np.int64)


class LognormalLength(_Frozen):
    """Lognormal tokens with the given median and log-space sigma, clipped to [min, max]."""

    kind: Literal["lognormal"] = "lognormal"
    median: float = Field(gt=0, description="tokens")
    sigma: float = Field(gt=0, le=5, description="standard deviation of log(tokens)")
    min: int = Field(1, gt=0)
    max: int = Field(32_768, gt=0)

    @model_validator(mode="after")
    def _order(self) -> LognormalLength:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        x = rng.lognormal(np.log(self.median), self.sigma, size=n)
        return np.clip(np.rint(x), self.min, self.max).astype(np.int64)


LengthDist = Annotated[
    FixedLength | UniformLength | LognormalLength, Field(discriminator="kind")
]


class PoissonArrivals(_Frozen):
    """Exponential inter-arrival times at the workload's rate."""

    kind: Literal["poisson"] = "poisson"

    def gaps(self, rng: np.random.Generator, rate: float, n: int) -> NDArray[np.float64]:
        return rng.exponential(1.0 / rate, size=n)


class GammaArrivals(_Frozen):
    """Gamma inter-arrival times with coefficient of variation ``cv`` (1 = Poisson; > 1 bursty)."""

    kind: Literal["gamma"] = "gamma"
    cv: float = Field(gt=0, le=20, description="coefficient of variation of the gaps")

    def gaps(self, rng: np.random.Generator, rate: float, n: int) -> NDArray[np.float64]:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, 1.0 / (rate * shape), size=n)


class ConstantArrivals(_Frozen):
    """Evenly spaced arrivals, one every 1/rate seconds."""

    kind: Literal["constant"] = "constant"

    def gaps(self, rng: np.random.Generator, rate: float, n: int) -> NDArray[np.float64]:
        return np.full(n, 1.0 / rate)


ArrivalProcess = Annotated[
    PoissonArrivals | GammaArrivals | ConstantArrivals, Field(discriminator="kind")
]


def arrival_times(
    process: PoissonArrivals | GammaArrivals | ConstantArrivals,
    rng: np.random.Generator,
    rate_per_s: float,
    duration_s: float,
    max_requests: int | None = None,
) -> NDArray[np.float64]:
    """Arrival times (emu s) in [0, duration_s), drawn in chunks until the window is full."""
    out: list[NDArray[np.float64]] = []
    t, count = 0.0, 0
    chunk = max(16, int(rate_per_s * duration_s * 1.2) + 16)
    while t < duration_s and (max_requests is None or count < max_requests):
        times = t + np.cumsum(process.gaps(rng, rate_per_s, chunk))
        out.append(times[times < duration_s])
        count += len(out[-1])
        t = float(times[-1])
    arr = np.concatenate(out) if out else np.zeros(0)
    return arr if max_requests is None else arr[:max_requests]

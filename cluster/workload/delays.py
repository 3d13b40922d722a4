"""Delay distributions (seconds): an agent's tool / think time between two of its calls.

Each variant is a small frozen pydantic model selected by ``kind`` with a ``sample`` method
that takes a ``numpy.random.Generator`` and returns emu seconds.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from disagg.cluster.section import Section as _Frozen


class FixedDelay(_Frozen):
    """Every delay is ``value_s`` emu seconds."""

    kind: Literal["fixed"] = "fixed"
    value_s: float = Field(ge=0, le=86_400, description="emu s")

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        return np.full(n, self.value_s, dtype=np.float64)


class ExponentialDelay(_Frozen):
    """Exponential delays with mean ``mean_s`` emu seconds."""

    kind: Literal["exponential"] = "exponential"
    mean_s: float = Field(ge=0, le=86_400, description="emu s")

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        return rng.exponential(self.mean_s, size=n) if self.mean_s > 0 else np.zeros(n)


class LognormalDelay(_Frozen):
    """Lognormal delays with the given median (emu s) and log-space sigma, clipped to
    ``max_s``: tool runs (tests, builds) have a long right tail."""

    kind: Literal["lognormal"] = "lognormal"
    median_s: float = Field(gt=0, le=86_400, description="emu s")
    sigma: float = Field(gt=0, le=5, description="standard deviation of log(seconds)")
    max_s: float = Field(600.0, gt=0, le=86_400, description="clip, emu s")

    @model_validator(mode="after")
    def _order(self) -> LognormalDelay:
        if self.median_s > self.max_s:
            raise ValueError(f"median_s {self.median_s:g} is above max_s {self.max_s:g}")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        x = rng.lognormal(np.log(self.median_s), self.sigma, size=n)
        return np.minimum(x, self.max_s)


DelayDist = Annotated[FixedDelay | ExponentialDelay | LognormalDelay, Field(discriminator="kind")]

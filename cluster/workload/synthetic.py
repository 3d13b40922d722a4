"""Synthetic workloads: arrival processes and length distributions, sampled from one Generator.

Each variant is a small frozen pydantic model selected by its ``kind`` (a discriminated union),
with a ``sample``/``arrival_times`` method that takes a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from disagg.cluster.section import Section as _Frozen
from disagg.cluster.workload.presets import PRESETS
from disagg.cluster.workload.trace_source import TraceSource


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
        if not self.min <= self.median <= self.max:
            raise ValueError(f"median {self.median:g} is outside [min {self.min}, max {self.max}]"
                             "; at least half the lengths would be clipped")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        x = rng.lognormal(np.log(self.median), self.sigma, size=n)
        return np.clip(np.rint(x), self.min, self.max).astype(np.int64)


class EmpiricalLength(TraceSource):
    """Lengths resampled (with replacement) from a trace's prompt or output column."""

    kind: Literal["empirical"] = "empirical"
    field: Literal["prompt", "output"] = Field(description="which of the trace's lengths")
    max: int | None = Field(None, gt=0, description="clip sampled lengths to at most this")

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        trace = self.load()
        values = trace.prompt_tokens if self.field == "prompt" else trace.output_tokens
        out = rng.choice(values, size=n, replace=True).astype(np.int64)
        return out if self.max is None else np.minimum(out, self.max)


class PresetLength(_Frozen):
    """A named distribution of :data:`~disagg.cluster.workload.presets.PRESETS` (reasoning
    models' output lengths, with their sources), e.g. ``{ kind = "preset", name =
    "reasoning_r1" }``."""

    kind: Literal["preset"] = "preset"
    name: str = Field(description="one of the presets in docs/workloads.md")

    @model_validator(mode="after")
    def _known(self) -> PresetLength:
        if self.name not in PRESETS:
            raise ValueError(f"unknown preset {self.name!r}; known: {', '.join(sorted(PRESETS))}")
        return self

    def lognormal(self) -> LognormalLength:
        """The preset as a clipped lognormal."""
        p = PRESETS[self.name]
        return LognormalLength(median=p.median, sigma=p.sigma, min=p.min, max=p.max)

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        return self.lognormal().sample(rng, n)


LengthDist = Annotated[
    FixedLength | UniformLength | LognormalLength | EmpiricalLength | PresetLength,
    Field(discriminator="kind"),
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


class OnOffArrivals(_Frozen):
    """Bursts: Poisson arrivals during ``on_s`` seconds, none during the next ``off_s``, repeated.

    The rate inside a burst is ``rate_per_s x (on_s + off_s) / on_s``, so the long-run mean is
    the workload's ``rate_per_s``. The first burst starts at emu time 0.
    """

    kind: Literal["onoff"] = "onoff"
    on_s: float = Field(gt=0, description="length of each burst, emu s")
    off_s: float = Field(gt=0, description="silence between bursts, emu s")

    def times(self, rng: np.random.Generator, rate: float, duration_s: float,
              max_requests: int | None) -> NDArray[np.float64]:
        """Arrival times (emu s) in [0, duration_s)."""
        period = self.on_s + self.off_s
        on_time = arrival_times(PoissonArrivals(), rng, rate * period / self.on_s,
                                math.ceil(duration_s / period) * self.on_s, None)
        bursts, within = np.divmod(on_time, self.on_s)
        t = bursts * period + within
        t = t[t < duration_s]
        return t if max_requests is None else t[:max_requests]


class DiurnalArrivals(_Frozen):
    """A daily-style ramp: Poisson with rate ``rate_per_s x (1 - amplitude cos(2 pi t / period_s))``.

    Starts at the trough (``1 - amplitude`` of the mean), peaks at ``period_s / 2``; the mean over
    whole periods is ``rate_per_s``. Sampled by thinning a Poisson process at the peak rate.
    """

    kind: Literal["diurnal"] = "diurnal"
    period_s: float = Field(gt=0, description="emu seconds from trough to trough")
    amplitude: float = Field(0.5, ge=0, lt=1, description="relative swing around the mean rate")

    def times(self, rng: np.random.Generator, rate: float, duration_s: float,
              max_requests: int | None) -> NDArray[np.float64]:
        """Arrival times (emu s) in [0, duration_s)."""
        peak = rate * (1 + self.amplitude)
        t = arrival_times(PoissonArrivals(), rng, peak, duration_s, None)
        level = rate * (1 - self.amplitude * np.cos(2 * np.pi * t / self.period_s))
        t = t[rng.random(len(t)) * peak < level]
        return t if max_requests is None else t[:max_requests]


ArrivalProcess = Annotated[
    PoissonArrivals | GammaArrivals | ConstantArrivals | OnOffArrivals | DiurnalArrivals,
    Field(discriminator="kind"),
]


def arrival_times(
    process: PoissonArrivals | GammaArrivals | ConstantArrivals | OnOffArrivals | DiurnalArrivals,
    rng: np.random.Generator,
    rate_per_s: float,
    duration_s: float,
    max_requests: int | None = None,
) -> NDArray[np.float64]:
    """Arrival times (emu s) in [0, duration_s), drawn in chunks until the window is full."""
    if isinstance(process, OnOffArrivals | DiurnalArrivals):
        return process.times(rng, rate_per_s, duration_s, max_requests)
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

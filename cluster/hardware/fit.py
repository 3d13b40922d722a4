"""The offline least-squares fit of each hardware family's constants to its ``fit`` figures.

For each family (:data:`FIT_SPECS`) the fit varies only the constants the figures can identify,
starting from the catalog profile (whose other constants are stated assumptions), and minimises
the squared log-ratio emulated / published over the family's ``fit`` figures with
``scipy.optimize.least_squares`` inside physical bounds. ``predict`` figures are never seen, and
only ``plain`` figures of the hardware's fit generation (:data:`reference.FIT_GENERATION`) are:
a speculative or method-unknown figure in a fit set raises :class:`FitSetError`. The
catalog stores the result (rounded) with a source string; ``disagg calibrate`` re-runs the fit and
shows both, and a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from disagg.cluster.hardware.calibration import emulate
from disagg.cluster.hardware.catalog import get_hardware
from disagg.cluster.hardware.reference import FIT_GENERATION, Figure, figures
from disagg.cluster.hardware.specs import HardwareProfile


@dataclass(frozen=True)
class Param:
    """One fitted constant: the profile field, its bounds, display unit and physical meaning."""

    field: str
    lower: float
    upper: float
    unit: float
    unit_name: str
    meaning: str


@dataclass(frozen=True)
class FitSpec:
    """Which constants of one hardware profile the fit varies."""

    hardware: str
    params: tuple[Param, ...]


_EFF_C = Param("compute_efficiency", 0.05, 1.0, 1.0, "", "achieved / dense peak FLOP/s")
# at most 90 % of peak HBM bandwidth: what tuned GPU kernels reach (assumption, a physical bound)
_EFF_M = Param("memory_efficiency", 0.3, 0.9, 1.0, "", "achieved / peak memory bandwidth")
FIT_SPECS = (
    FitSpec("h100", (
        _EFF_C, _EFF_M,
        Param("layer_overhead_s", 0.0, 500e-6, 1e-6, "us",
              "fixed cost per layer per step (kernel launches), any TP degree"),
    )),
    FitSpec("trainium2", (
        _EFF_C,
        Param("tp_layer_latency_s", 0.0, 1e-3, 1e-6, "us",
              "collective latency per layer per doubling of the TP degree"),
    )),
    # the vLLM-neuron stack on Trainium2: the chip's constants from the NxD fit above, the
    # stack's per-iteration host overhead from one figure (the 8B TPOT at TP8)
    FitSpec("trainium2-vllm-neuron", (
        Param("step_overhead_s", 0.0, 20e-3, 1e-3, "ms",
              "host overhead per iteration of the vLLM-neuron serving stack"),
    )),
    # two plain figures (8B on 1 wafer, 70B on 4, launch software) identify two constants;
    # layer_latency_s (a size-independent per-layer latency) stays the catalog's assumption
    FitSpec("cs3", (
        Param("token_latency_s", 0.0, 1e-3, 1e-6, "us", "fixed cost per generated token"),
        Param("pipeline_compute_efficiency", 1e-4, 1.0, 1.0, "",
              "fraction of wafer peak one token's layers reach on their share of the wafer"),
    )),
)


class FitSetError(ValueError):
    """A figure that is not plain, or not of the hardware's fit generation, in a fit set."""


def fit_set(hardware: str, pool: list[Figure] | None = None) -> list[Figure]:
    """The figures one hardware's fit uses: ``fit`` figures of that hardware; each must be plain
    and of :data:`FIT_GENERATION` (else :class:`FitSetError`)."""
    chosen = [f for f in (figures() if pool is None else pool)
              if f.hardware == hardware and f.kind == "fit"]
    for f in chosen:
        if f.method != "plain" or f.spec is not None:
            raise FitSetError(f"figure {f.key}: method {f.method!r} in the {hardware} fit set; "
                              "allowed: plain")
        if f.generation != FIT_GENERATION[hardware]:
            raise FitSetError(f"figure {f.key}: generation {f.generation!r} in the {hardware} "
                              f"fit set; allowed: {FIT_GENERATION[hardware]!r}")
    return chosen


@dataclass(frozen=True)
class FitResult:
    """The fitted constants of one hardware profile and the residuals at the optimum."""

    spec: FitSpec
    values: dict[str, float]
    fitted: list[Figure]
    log_residuals: list[float]

    @property
    def profile(self) -> HardwareProfile:
        """The catalog profile with the fitted constants in place."""
        return get_hardware(self.spec.hardware).model_copy(update=self.values)


def _residuals(x: np.ndarray, spec: FitSpec, figs: list[Figure]) -> np.ndarray:
    update = {p.field: float(v) * p.unit for p, v in zip(spec.params, x, strict=True)}
    hw = get_hardware(spec.hardware).model_copy(update=update)
    return np.array([np.log(emulate(f, hw) / f.published) for f in figs])


def fit_hardware(spec: FitSpec) -> FitResult:
    """Least-squares fit of one profile's constants to its ``fit`` figures."""
    figs = fit_set(spec.hardware)
    base = get_hardware(spec.hardware)
    lower = np.array([p.lower / p.unit for p in spec.params])
    upper = np.array([p.upper / p.unit for p in spec.params])
    start = np.clip([getattr(base, p.field) / p.unit for p in spec.params], lower, upper)
    start = np.where(start <= lower, lower + 0.1 * (upper - lower), start)
    sol = least_squares(_residuals, start, bounds=(lower, upper), args=(spec, figs),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    values = {p.field: float(v) * p.unit for p, v in zip(spec.params, sol.x, strict=True)}
    return FitResult(spec, values, figs, [float(r) for r in sol.fun])


def fit_all() -> list[FitResult]:
    """Every family's fit, in :data:`FIT_SPECS` order."""
    return [fit_hardware(s) for s in FIT_SPECS]

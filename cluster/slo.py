"""SLOs as studies write them: the ``[slo]`` section and the targets it sets.

Three forms, combinable:

- absolute per-request targets ``ttft_s`` and ``tpot_s`` (the default; a request meets the SLO
  when both hold — DistServe's definition; ``slo_attainment`` is the share that does);
- percentile targets ``percentiles = { ttft_p90_s = 0.4, tpot_p99_s = 0.1, e2e_p99_s = 20 }``:
  the P-th percentile of a metric over a class's submitted requests must not exceed the value
  (MLPerf's form: TTFT and TPOT at p99);
- slowdown targets ``slowdown = { reference = { hardware = "a100-80gb", chips = 8 }, p50 = 2,
  p90 = 5, p99 = 10 }``: the P-th percentile of each request's latency divided by the same
  request's latency alone on the reference unit must not exceed the factor (Splitwise's form).

``[slo.classes.NAME]`` gives a class its own percentile / slowdown targets (replacing the
top-level ones for that class). Metrics: ``ttft`` (time to first token), ``tpot`` (the request's
mean time per output token after the first, i.e. its mean time between tokens) and ``e2e``.
How attainment, goodput and capacity follow from the targets: :mod:`disagg.cluster.slo_eval`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from disagg.cluster.hardware.catalog import UnknownCatalogEntry, get_hardware
from disagg.cluster.hardware.specs import HardwareProfile
from disagg.cluster.section import Section as _Section

Metric = Literal["ttft", "tpot", "e2e"]
METRICS: tuple[Metric, ...] = ("ttft", "tpot", "e2e")
_PERCENTILE_KEY = re.compile(r"^(ttft|tpot|e2e)_p(\d+(?:\.\d+)?)_s$")
_LEVEL_KEY = re.compile(r"^p(\d+(?:\.\d+)?)$")




def _level(text: str, key: str) -> float:
    level = float(text)
    if not 0 < level < 100:
        raise ValueError(f"{key}: percentile {level:g} is not allowed; allowed: 0 < P < 100")
    return level


class ReferenceUnit(_Section):
    """The uncontended unit slowdowns are measured against: a catalog chip and its count."""

    hardware: str = Field(min_length=1, description="catalog hardware name, e.g. a100-80gb")
    chips: int = Field(1, ge=1, le=1024, description="tensor-parallel chips of the unit")

    @field_validator("hardware")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            get_hardware(value)
        except UnknownCatalogEntry as e:
            raise ValueError(e.message) from None
        return value

    @property
    def profile(self) -> HardwareProfile:
        """The catalog profile of the reference chip."""
        return get_hardware(self.hardware)


class SlowdownTargets(_Section):
    """``pP = factor`` targets on latency / the same request's latency alone on ``reference``."""

    reference: ReferenceUnit
    metrics: list[Metric] = Field(default_factory=lambda: list(METRICS),
                                  description="which latencies the factors bound")
    levels: dict[float, float] = Field(
        description="percentile -> slowdown factor (>= 1), written as keys p50 = 2, p90 = 5, ...")

    @classmethod
    def _collect(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "levels" in value:
            return value
        out: dict[str, Any] = {"levels": {}}
        for key, v in value.items():
            m = _LEVEL_KEY.match(key)
            if m is None:
                out[key] = v
                continue
            if not isinstance(v, int | float) or v < 1:
                raise ValueError(f"{key}: value {v!r} is not allowed; allowed: a factor >= 1")
            out["levels"][_level(m.group(1), key)] = float(v)
        if not out["levels"]:
            raise ValueError("no pP = factor target; allowed: e.g. p50 = 2, p90 = 5, p99 = 10")
        return out



class ClassTargets(_Section):
    """One SLO class's percentile and slowdown targets (replacing the top-level ones)."""

    percentiles: dict[str, float] | None = Field(
        None, description="{metric}_p{P}_s = seconds, e.g. ttft_p90_s = 0.4")
    slowdown: SlowdownTargets | None = Field(None, description="pP = factor over a reference")

    @field_validator("percentiles")
    @classmethod
    def _keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, v in (value or {}).items():
            m = _PERCENTILE_KEY.match(key)
            if m is None:
                raise ValueError(f"percentiles.{key}: not a target name; allowed: "
                                 "{ttft|tpot|e2e}_p{P}_s, e.g. ttft_p90_s")
            _level(m.group(2), key)
            if not v > 0:
                raise ValueError(f"percentiles.{key}: value {v!r}; allowed: seconds > 0")
        return value

    @field_validator("slowdown", mode="before")
    @classmethod
    def _slowdown(cls, value: Any) -> Any:
        return SlowdownTargets._collect(value)


class SloConfig(ClassTargets):
    """Latency targets: absolute per-request ``ttft_s`` / ``tpot_s`` (always; the per-request
    ``slo_met`` column and SLO-aware policies use them), and optionally percentile and slowdown
    targets, per class in ``classes``; see docs/slo.md."""

    ttft_s: float = Field(gt=0, description="time to first token, per request (s)")
    tpot_s: float = Field(gt=0, description="time per output token after the first (s)")
    task_s: float | None = Field(None, gt=0, description="agentic workloads: a task's target "
                                 "completion time (first call sent to last call ended), emu s")
    classes: dict[str, ClassTargets] = Field(
        default_factory=dict, description="per SLO class: its own percentiles / slowdown")

    @property
    def percentile_form(self) -> bool:
        """True when any percentile or slowdown target is set (attainment follows them)."""
        return any(t.percentiles or t.slowdown for t in (self, *self.classes.values()))

    def targets_for(self, slo_class: str) -> list[Target]:
        """The percentile / slowdown targets that hold for one class."""
        own = self.classes.get(slo_class, self)
        out = [Target(slo_class, m.group(1), _level(m.group(2), key), v, None)  # type: ignore[arg-type]
               for key, v in (own.percentiles or {}).items()
               if (m := _PERCENTILE_KEY.match(key)) is not None]
        s = own.slowdown
        if s is not None:
            out += [Target(slo_class, metric, level, factor, s.reference)
                    for level, factor in sorted(s.levels.items()) for metric in s.metrics]
        return out


@dataclass(frozen=True)
class Target:
    """One percentile target of one class: P-th percentile of ``metric`` (seconds, or a slowdown
    factor when ``reference`` is set) at most ``limit``."""

    slo_class: str
    metric: Metric
    percentile: float
    limit: float
    reference: ReferenceUnit | None

    @property
    def label(self) -> str:
        """``ttft_p90_s`` or ``ttft_p90_slowdown``."""
        unit = "slowdown" if self.reference is not None else "s"
        return f"{self.metric}_p{self.percentile:g}_{unit}"

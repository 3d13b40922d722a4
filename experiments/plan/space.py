"""The search space file of ``disagg plan`` (TOML): what to vary, what to maximise, what to respect.

```toml
[objective]
maximize = "goodput_per_dollar"   # or goodput_per_watt, goodput_per_rack, tasks_per_dollar
target_attainment = 0.9           # capacity = highest rate with this SLO attainment
                                  # (tasks_per_dollar: task arrivals, share within [slo] task_s)

[constraints]                     # optional; a candidate over any of them is not run
max_usd_per_hour = 1500.0
max_power_kw = 200.0
max_racks = 4.0

[[family]]                        # one or more; every list is an axis of the grid
name = "trn2+cs3"
prefill = { hardware = ["trainium2"], chips_per_unit = [4], units = [2, 4, 8] }
decode = { hardware = ["cs3"], chips_per_unit = [4], units = [1, 2] }
host_nic_gbps = [800.0, 3200.0]   # optional: both pools' host NIC

[[family]]                        # a colocated GPU baseline: one pool doing both phases
name = "h100 colocated"
colocated = { hardware = ["h100"], chips_per_unit = [8], units = [1, 2, 4] }
token_budget = [8192]             # optional; tokens per iteration (chunked prefill)

[policies]                        # optional; default: the experiment's
router = ["round_robin", "slo_aware"]
prefill_batching = ["fcfs"]

[search]                          # capacity bisection per candidate (virtual engine)
tol_fraction = 0.05               # stop when hi - lo <= tol_fraction x hi
repeats = 1                       # seeds averaged per rate
prune_slack = 0.5                 # see bounds.py

[hardware.cs3]                    # optional per-hardware facts the catalog lacks
price_per_chip_hour_usd = 100.0
power_w = 23000.0
chips_per_rack = 2

[robust]                          # optional: what `disagg plan --robust` varies (docs/plan.md)
samples = 16
[robust.cs3]
price_per_hour_usd = [60, 230]
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from disagg.cluster.errors import ConfigError, describe_validation_error
from disagg.cluster.hardware.catalog import hardware
from disagg.cluster.section import Section as _Section
from disagg.experiments.robust.dimensions import parse_settings
from disagg.policies.batching import PREFILL_BATCHING
from disagg.policies.router import ROUTERS

Metric = Literal["goodput_per_dollar", "goodput_per_watt", "goodput_per_rack", "tasks_per_dollar"]



class Objective(_Section):
    """What the plan maximises: capacity at the SLO divided by dollars/hour, kW or racks."""

    maximize: Metric = Field("goodput_per_dollar", description="the ratio to maximise")
    target_attainment: float = Field(0.9, gt=0, le=1, description="SLO attainment that counts")


class Constraints(_Section):
    """Limits a candidate must respect to be run at all (None: no limit)."""

    max_usd_per_hour: float | None = Field(None, gt=0, description="cluster price, USD per hour")
    max_power_kw: float | None = Field(None, gt=0, description="cluster power, kW")
    max_racks: float | None = Field(None, gt=0, description="cluster footprint, racks")


class PoolAxes(_Section):
    """Axes of one pool: every combination of these values is a candidate pool."""

    hardware: list[str] = Field(min_length=1, description="catalog hardware names")
    chips_per_unit: list[int] = Field(min_length=1, description="chips (or wafers) per unit")
    units: list[int] = Field(min_length=1, description="units in the pool")

    @model_validator(mode="after")
    def _positive(self) -> PoolAxes:
        for field in ("chips_per_unit", "units"):
            bad = [v for v in getattr(self, field) if v < 1]
            if bad:
                raise ValueError(f"{field} values must be >= 1, got {bad[0]}")
        return self


class Family(_Section):
    """A family of clusters: a prefill pool x a decode pool (disaggregated), or one colocated
    pool whose units do both phases (``colocated``, with its iteration token budgets)."""

    name: str = Field(min_length=1, max_length=60, description="label in the outputs")
    prefill: PoolAxes | None = None
    decode: PoolAxes | None = None
    colocated: PoolAxes | None = None
    token_budget: list[int] = Field([8192], min_length=1,
                                    description="colocated only: tokens per iteration")
    host_nic_gbps: list[Annotated[float, Field(gt=0)] | None] = Field([None], min_length=1,
                                              description="host NIC of the pools; None: catalog")

    @model_validator(mode="after")
    def _one_shape(self) -> Family:
        split = self.prefill is not None or self.decode is not None
        if self.colocated is not None and split:
            raise ValueError("give either colocated or prefill and decode, not both")
        if self.colocated is None and (self.prefill is None or self.decode is None):
            raise ValueError("give prefill and decode, or colocated")
        if any(b < 1 for b in self.token_budget):
            raise ValueError("token_budget values must be >= 1")
        return self


class PolicyAxes(_Section):
    """Policy axes (registry names); empty: the experiment's own."""

    router: list[str] = Field(default_factory=list)
    prefill_batching: list[str] = Field(default_factory=list)


class SearchSettings(_Section):
    """How each candidate's capacity is measured."""

    tol_fraction: float = Field(0.05, gt=0, lt=1, description="bisection resolution / hi")
    repeats: int = Field(1, ge=1, le=20, description="seeds averaged per rate")
    prune_slack: float = Field(0.5, ge=0, description="optimism added to the analytic bound")
    lo_fraction: float = Field(1 / 64, gt=0, lt=1, description="lowest rate searched / bound")


class HardwareFacts(_Section):
    """Per-hardware facts for the objective, overriding the catalog (assumptions of the user)."""

    price_per_chip_hour_usd: float | None = Field(None, gt=0)
    power_w: float | None = Field(None, gt=0, description="per chip or system")
    chips_per_rack: float | None = Field(None, gt=0, description="chips or systems per rack")


class SearchSpace(_Section):
    """A whole search space file."""

    objective: Objective = Objective()
    constraints: Constraints = Constraints()
    family: list[Family] = Field(min_length=1, description="at least one [[family]]")
    policies: PolicyAxes = PolicyAxes()
    search: SearchSettings = SearchSettings()
    hardware: dict[str, HardwareFacts] = Field(default_factory=dict)
    robust: dict[str, Any] = Field(default_factory=dict, description="what --robust varies: "
                                   "experiments/robust/dimensions.py (checked by load_space)")

    @model_validator(mode="after")
    def _names_known(self) -> SearchSpace:
        known = hardware()
        allowed = ", ".join(sorted(known))
        seen: dict[str, int] = {}
        for i, fam in enumerate(self.family):
            if fam.name in seen:
                raise ValueError(f"field 'family.{i}.name': value {fam.name!r} is the name of "
                                 f"family {seen[fam.name]} too; allowed: a distinct name per family")
            seen[fam.name] = i
            for kind in ("prefill", "decode", "colocated"):
                axes = getattr(fam, kind)
                for name in [] if axes is None else axes.hardware:
                    if name not in known:
                        raise ValueError(f"field 'family.{i}.{kind}.hardware': value {name!r} is "
                                         f"not catalog hardware; allowed: {allowed}")
        for name in self.hardware:
            if name not in known:
                raise ValueError(f"field 'hardware.{name}': {name!r} is not catalog hardware, so "
                                 f"these facts would apply to nothing; allowed: {allowed}")
        return self


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search space file; :class:`ConfigError` names the field and value."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--search: {path}: no such search space file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, IsADirectoryError) as e:
        raise ConfigError(f"--search: {path}: not a valid TOML file: {e}") from None
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"--search {path}: {describe_validation_error(e, SearchSpace)}") from None
    try:
        parse_settings(space.robust)
    except ConfigError as e:
        raise ConfigError(f"--search {path}: {str(e).removeprefix('--search ')}") from None
    for field, registry in (("router", ROUTERS), ("prefill_batching", PREFILL_BATCHING)):
        for name in getattr(space.policies, field):
            try:
                registry.factory(name)  # checks a dotted path's class without calling it
            except ConfigError as e:
                raise ConfigError(f"--search {path}: field 'policies.{field}': {e}") from None
    return space

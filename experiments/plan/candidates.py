"""Candidate clusters of a plan: the grid a search space spans, each candidate's experiment, and
its price, power and footprint (the denominators of the objective)."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

from disagg.cluster.config import Experiment, PolicySpec
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.specs import HardwareProfile
from disagg.cluster.pool_config import ColocatedPoolConfig, DecodePoolConfig, PoolConfig
from disagg.experiments.plan.space import Family, SearchSpace

# Chips (or systems) per rack when neither the catalog nor the space file says. AWS, Cerebras and
# NVIDIA publish no rack counts for these deployments: every row is an assumption, named as such.
DEFAULT_CHIPS_PER_RACK: dict[str, tuple[float, str]] = {
    "trainium2": (64, "assumption: one Trn2 UltraServer (64 chips, [V] Neuron docs trn2-arch) "
                      "per rack"),
    "trainium3": (144, "assumption: one Trn3 UltraServer Gen2 (144 chips, [V] Neuron docs "
                       "trn3-arch) per rack"),
    "cs3": (2, "assumption: a CS-3 is 15 RU and ~23 kW ([2] third-party summaries); two per rack"),
    "h100": (32, "assumption: four 8-GPU servers per rack (~10 kW each)"),
    "h200": (32, "assumption: four 8-GPU servers per rack (~10 kW each)"),
    "b200": (32, "assumption: four 8-GPU servers per rack (~14 kW each)"),
}


@dataclass(frozen=True)
class Candidate:
    """One cluster and policy choice of the grid (hardware by catalog name): a prefill and a
    decode pool, or (the ``colocated_*`` fields set, the others None) one colocated pool."""

    family: str
    prefill_hardware: str | None
    prefill_chips_per_unit: int | None
    prefill_units: int | None
    decode_hardware: str | None
    decode_chips_per_unit: int | None
    decode_units: int | None
    host_nic_gbps: float | None
    router: str
    prefill_batching: str
    colocated_hardware: str | None = None
    colocated_chips_per_unit: int | None = None
    colocated_units: int | None = None
    token_budget: int | None = None

    @property
    def key(self) -> str:
        """A stable id: the same candidate has the same key across runs (resuming relies on it)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``4x trainium2x4 + 1x cs3x4 · slo_aware/fcfs``."""
        nic = "" if self.host_nic_gbps is None else f" @{self.host_nic_gbps:g}G"
        if self.colocated_hardware is not None:
            pools = (f"{self.colocated_units}x {self.colocated_hardware}x"
                     f"{self.colocated_chips_per_unit} colocated (budget {self.token_budget})")
        else:
            pools = (f"{self.prefill_units}x {self.prefill_hardware}x{self.prefill_chips_per_unit}"
                     f" + {self.decode_units}x {self.decode_hardware}x{self.decode_chips_per_unit}")
        return f"{pools}{nic} · {self.router}/{self.prefill_batching}"


@dataclass(frozen=True)
class Footprint:
    """What a candidate costs to run: USD per hour, kW, racks (None where a pool lacks the fact,
    and ``lacking`` maps the attribute to the hardware that lacks it)."""

    usd_per_hour: float | None
    power_kw: float | None
    racks: float | None
    lacking: tuple[tuple[str, str], ...] = ()


def enumerate_candidates(space: SearchSpace, base: Experiment) -> list[Candidate]:
    """Every candidate of the grid, in a stable order (families, then axes as written)."""
    routers = space.policies.router or [base.policies.router.name]
    batchers = space.policies.prefill_batching or [base.policies.prefill_batching.name]
    out = []
    for fam in space.family:
        out.extend(_family(fam, routers, batchers))
    return out


def _family(fam: Family, routers: list[str], batchers: list[str]) -> list[Candidate]:
    if fam.colocated is not None:
        c = fam.colocated
        grid = itertools.product(c.hardware, c.chips_per_unit, c.units, fam.token_budget,
                                 fam.host_nic_gbps, routers, batchers)
        return [Candidate(fam.name, None, None, None, None, None, None, nic, router, batcher,
                          hw, chips, units, budget)
                for hw, chips, units, budget, nic, router, batcher in grid]
    p, d = fam.prefill, fam.decode
    assert p is not None and d is not None  # checked by Family
    pairs = itertools.product(p.hardware, p.chips_per_unit, p.units, d.hardware,
                              d.chips_per_unit, d.units, fam.host_nic_gbps, routers, batchers)
    return [Candidate(fam.name, p_hw, p_chips, p_units, d_hw, d_chips, d_units, nic, router,
                      batcher)
            for p_hw, p_chips, p_units, d_hw, d_chips, d_units, nic, router, batcher in pairs]


def _pool(kind: type[PoolConfig], base: PoolConfig | None, hardware: str, chips: int, units: int,
          nic_gbps: float | None, **extra: object) -> PoolConfig:
    """A pool of ``kind`` on the candidate's hardware, keeping the base pool's other fields when
    the base has a pool of that kind."""
    keep = base if base is not None and type(base) is kind else None
    fields = {} if keep is None else keep.model_dump(exclude={"hardware"})
    nic = nic_gbps if nic_gbps is not None else (keep.host_nic_gbps if keep is not None else None)
    fields.update(hardware=hardware, chips_per_unit=chips, units=units, units_per_host=None,
                  host_nic_gbps=nic, **extra)
    return kind.model_validate(fields)


def candidate_experiment(base: Experiment, c: Candidate, space: SearchSpace) -> Experiment:
    """``base`` with the candidate's pools and policies (the base's policy parameters are kept
    for the policy it names; another policy gets its defaults). Prices from the space file."""
    pools: dict[str, PoolConfig | None] = {"prefill": None, "decode": None, "colocated": None}
    try:
        if c.colocated_hardware is not None:
            assert c.colocated_chips_per_unit is not None and c.colocated_units is not None
            pools["colocated"] = _pool(ColocatedPoolConfig, base.colocated, c.colocated_hardware,
                                       c.colocated_chips_per_unit, c.colocated_units,
                                       c.host_nic_gbps, token_budget=c.token_budget)
        else:
            assert c.prefill_hardware is not None and c.decode_hardware is not None
            pools["prefill"] = _pool(PoolConfig, base.prefill, c.prefill_hardware,
                                     c.prefill_chips_per_unit or 1, c.prefill_units or 1,
                                     c.host_nic_gbps)
            pools["decode"] = _pool(DecodePoolConfig, base.decode, c.decode_hardware,
                                    c.decode_chips_per_unit or 1, c.decode_units or 1,
                                    c.host_nic_gbps)
    except ValueError as e:
        raise ConfigError(f"--search: family {c.family!r}: {e}") from None
    priced = {k: None if v is None else _priced(v, space) for k, v in pools.items()}
    policies = base.policies.model_copy(update={
        "router": _spec(base.policies.router, c.router),
        "prefill_batching": _spec(base.policies.prefill_batching, c.prefill_batching),
    })
    return base.model_copy(update={**priced, "policies": policies})


def _spec(current: PolicySpec, name: str) -> PolicySpec:
    return current if current.name == name else PolicySpec(name=name)


def _priced(pool: PoolConfig, space: SearchSpace) -> PoolConfig:
    facts = space.hardware.get(pool.hardware.name)
    if facts is None or facts.price_per_chip_hour_usd is None:
        return pool
    return pool.model_copy(update={"price_per_chip_hour_usd": facts.price_per_chip_hour_usd})


def _power_w(hw: HardwareProfile, space: SearchSpace) -> float | None:
    facts = space.hardware.get(hw.name)
    return facts.power_w if facts is not None and facts.power_w is not None else hw.power_w


def _chips_per_rack(hw: HardwareProfile, space: SearchSpace) -> float | None:
    facts = space.hardware.get(hw.name)
    if facts is not None and facts.chips_per_rack is not None:
        return facts.chips_per_rack
    default = DEFAULT_CHIPS_PER_RACK.get(hw.name)
    return None if default is None else default[0]


def footprint(exp: Experiment, space: SearchSpace) -> Footprint:
    """Price, power and racks of an experiment's two pools (None if any pool lacks the fact)."""
    totals = {"usd_per_hour": 0.0, "power_kw": 0.0, "racks": 0.0}
    lacking: dict[str, str] = {}
    for pool in exp.pools.values():
        chips = pool.units * pool.chips_per_unit
        price = pool.price_per_unit_hour_usd
        watts, per_rack = _power_w(pool.hardware, space), _chips_per_rack(pool.hardware, space)
        values = {"usd_per_hour": None if price is None else price * pool.units,
                  "power_kw": None if watts is None else watts * chips / 1e3,
                  "racks": None if per_rack is None else chips / per_rack}
        for attr, value in values.items():
            if value is None:
                lacking.setdefault(attr, pool.hardware.name)
            else:
                totals[attr] += value
    known = {a: None if a in lacking else total for a, total in totals.items()}
    return Footprint(known["usd_per_hour"], known["power_kw"], known["racks"],
                     lacking=tuple(sorted(lacking.items())))


DENOMINATOR = {"goodput_per_dollar": ("usd_per_hour", "price per hour",
                                      "price_per_chip_hour_usd"),
               "goodput_per_watt": ("power_kw", "power", "power_w"),
               "goodput_per_rack": ("racks", "rack footprint", "chips_per_rack"),
               "tasks_per_dollar": ("usd_per_hour", "price per hour", "price_per_chip_hour_usd")}

ATTAINMENT_KEY = {"tasks_per_dollar": "task_slo_attainment"}
"""summary.json key whose share must reach the target, by objective (default slo_attainment)."""


def objective_value(metric: str, capacity_per_s: float, denominator: float | None) -> float | None:
    """The objective at a capacity: capacity / denominator; for ``tasks_per_dollar``, tasks
    per dollar (task capacity per s x 3600 / USD per hour)."""
    if not denominator:
        return None
    scale = 3600.0 if metric == "tasks_per_dollar" else 1.0
    return capacity_per_s * scale / denominator


def objective_denominator(fp: Footprint, metric: str) -> float:
    """The objective's denominator for a footprint, or :class:`ConfigError` naming what to set."""
    attr, what, field = DENOMINATOR[metric]
    value = getattr(fp, attr)
    if value is None or value <= 0:
        hardware = dict(fp.lacking).get(attr, "a pool")
        raise ConfigError(f"--search: objective {metric!r} needs the {what} of every pool, and "
                          f"{hardware} has none in the catalog; set [hardware.<name>] {field} "
                          f"in the search space file")
    return float(value)


def within(fp: Footprint, space: SearchSpace) -> str | None:
    """None if the footprint respects the constraints, else which one it breaks."""
    c = space.constraints
    checks = (("max_usd_per_hour", fp.usd_per_hour), ("max_power_kw", fp.power_kw),
              ("max_racks", fp.racks))
    for field, value in checks:
        limit = getattr(c, field)
        if limit is not None and value is not None and value > limit * (1 + 1e-9):
            return f"over {field} ({value:.4g} > {limit:g})"
    return None

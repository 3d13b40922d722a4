"""The experiment config tree: one frozen pydantic model loaded from TOML.

``load_experiment(path, overrides)`` returns a validated :class:`Experiment` or raises
:class:`ConfigError` whose message names the field, the value and what is allowed.
Catalog names (model, hardware) are resolved to full specs, so the dumped config is complete.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from disagg.cluster.errors import ConfigError, describe_validation_error
from disagg.cluster.faults import FaultEntry, check_fault_kinds, entries_from_legacy
from disagg.cluster.hardware.catalog import (
    UnknownCatalogEntry,
    get_hardware,
    get_model,
    hardware,
    models,
)
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.overrides import apply_overrides
from disagg.cluster.prefix_cache import PrefixCacheConfig
from disagg.cluster.same_host import check_same_host
from disagg.cluster.section import Section as _Section
from disagg.cluster.serving_config import ColocatedScheduler, DecodeMechanics
from disagg.cluster.slo import SloConfig
from disagg.cluster.workload.kinds import SyntheticWorkload, WorkloadSpec


def _resolve(value: Any, getter: Callable[[str], BaseModel], known: Callable[[], dict[str, Any]]) -> Any:
    """A catalog name, a table naming a catalog entry (``base``, or ``name`` when it is a catalog
    name) plus overrides, or a full inline spec. With ``base`` the entry may be renamed
    (``name``); its sources follow it, overridden fields marked "user override"."""
    try:
        if isinstance(value, str):
            return getter(value)
        if isinstance(value, dict) and "base" in value:
            if not isinstance(value["base"], str):
                raise ValueError(f"base: value {value['base']!r} is not a catalog name; allowed: "
                                 f"{', '.join(sorted(known()))}")
            base = getter(value["base"]).model_dump()
            overrides = {k: v for k, v in value.items() if k not in ("base", "name")}
            base["sources"] = {**base["sources"], **{k: "user override" for k in overrides}}
            return {**base, **overrides, "name": value.get("name", base["name"])}
        if isinstance(value, dict) and value.get("name") in known():
            base = getter(value["name"]).model_dump()
            overrides = {k: v for k, v in value.items() if k != "name"}
            base["sources"] = {**base["sources"], **{k: "user override" for k in overrides}}
            return {**base, **overrides}
        if isinstance(value, dict) and set(value) == {"name"}:
            return getter(value["name"])
    except UnknownCatalogEntry as e:
        raise ValueError(e.message) from None
    return value




class ExperimentSection(_Section):
    """Identity, seed, length and clock of a run."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=80,
                      description="letters, digits, _ . -; names the default output folder")
    seed: int = Field(0, ge=0, description="root seed; every component spawns its own stream")
    duration_s: float = Field(gt=0, le=1e6, description="emu seconds during which requests arrive")
    dilation: float = Field(1.0, gt=0, le=1000, description="wall seconds per emu second")
    engine: Literal["ray", "virtual"] = Field("ray", description="ray actors or virtual time")
    drain_timeout_s: float = Field(
        300.0, gt=0, description="emu seconds after the last arrival before unfinished requests fail"
    )
    control_delay_s: float = Field(
        0.0, ge=0, le=1, description="virtual engine: modeled delay of every control message"
    )
    load_report_interval_s: float = Field(
        0.005, ge=0, le=10,
        description="emu s between a unit's load reports to the router (0 = on every change)",
    )
    start_margin_s: float = Field(
        1.0, ge=0, le=60, description="ray engine: wall seconds between set-up and emu time 0"
    )
    hold_wall_s: float = Field(
        0.05, ge=0, le=10, description="ray engine: conservative hold unit, wall s; each edge "
        "(sender -> receiver) is held a multiple of it (cluster/timegate.py HOLD_MULTIPLIERS; "
        "emu hold = multiple x this / dilation); 0 = none; the virtual engine and disagg serve "
        "use 0")
    over_context: Literal["reject", "truncate"] = Field(
        "reject", description="a request whose prompt + output exceeds model.max_context_tokens: "
        "rejected (reason exceeds_context) or its prompt truncated to fit")
    max_memory_fraction: float = Field(
        0.8, gt=0, le=1, description="refuse a run whose estimated peak memory exceeds this "
        "fraction of the machine's RAM (see docs/reliability.md)")


class PoolConfig(_Section):
    """A pool of identical units: ``units`` actors, each ``chips_per_unit`` chips or systems."""

    hardware: HardwareProfile = Field(
        description="catalog name, a table {name = ..., field = override}, or a full inline spec"
    )
    chips_per_unit: int = Field(1, ge=1, le=1024, description="tensor-parallel chips or wafers")
    units: int = Field(1, ge=1, le=100_000, description="units (actors) in the pool")
    units_per_host: int | None = Field(
        None, ge=1, description="units sharing one host NIC; default chips_per_host // chips_per_unit"
    )
    price_per_chip_hour_usd: float | None = Field(
        None, gt=0, description="$ per chip (or system) hour; overrides the catalog's price")
    power_per_chip_w: float | None = Field(
        None, gt=0, description="W per chip (or system); overrides the catalog's power")
    host_nic_gbps: float | None = Field(None, gt=0, description="overrides the catalog NIC")

    @field_validator("hardware", mode="before")
    @classmethod
    def _resolve_hardware(cls, value: Any) -> Any:
        return _resolve(value, get_hardware, hardware)

    @property
    def hosts_units(self) -> int:
        """Units per host after defaults."""
        if self.units_per_host is not None:
            return self.units_per_host
        return max(1, self.hardware.chips_per_host // self.chips_per_unit)

    @property
    def price_per_unit_hour_usd(self) -> float | None:
        price = self.price_per_chip_hour_usd or self.hardware.price_per_hour_usd
        return None if price is None else price * self.chips_per_unit

    @property
    def power_per_unit_w(self) -> float | None:
        """Watts drawn by one unit (all its chips), or None when the power is unknown."""
        power = self.power_per_chip_w or self.hardware.power_w
        return None if power is None else power * self.chips_per_unit

    @property
    def host_nic_bytes_per_s(self) -> float:
        if self.host_nic_gbps is not None:
            return self.host_nic_gbps * 1e9 / 8
        return self.hardware.host_nic_bytes_per_s


class DecodePoolConfig(PoolConfig, DecodeMechanics):
    """A decode or colocated pool: a plain pool plus the serving mechanics (serving_mechanics.md).

    Speculative decoding and KV allocation (cluster/serving_config.py)."""


class ColocatedPoolConfig(DecodePoolConfig):
    """A pool of units that each run prefill and decode themselves (a GPU server with vLLM-style
    continuous batching and chunked prefill); used instead of ``[prefill]`` and ``[decode]``."""

    token_budget: int = Field(
        8192, ge=1, le=1_000_000,
        description="tokens per iteration: running decodes (1 each) + prefill chunks; default "
        "vLLM V1's max_num_batched_tokens for its API server on >= 70 GiB GPUs",
    )
    max_running: int = Field(
        256, ge=1, le=100_000,
        description="requests in flight per unit (prefilling + decoding); vLLM's max_num_seqs",
    )
    @model_validator(mode="after")
    def _recompute_only(self) -> ColocatedPoolConfig:
        if self.preemption == "swap":
            raise ValueError("preemption = \"swap\" is modeled on decode pools only; allowed on "
                             "[colocated]: \"recompute\"")
        return self

    scheduler: ColocatedScheduler = Field(
        "vllm_v1", description="vllm_v1: chunked prefill under token_budget next to every "
        "running decode; vllm_v0: prefill-first iterations of whole prompts that stall all "
        "decodes (docs/colocated.md)")


class FabricConfig(_Section):
    """EFA between hosts: one-way latency, per-host NICs, optional core, per-flow caps."""

    latency_s: float = Field(
        35e-6, ge=0, le=1, description="one-way; default from aws-ofi-nccl's p5en cost model"
    )
    setup_s: float = Field(
        0.0, ge=0, le=1, description="fixed cost per transfer, before its first byte moves"
    )
    per_flow_cap_gbps: float | None = Field(
        None, gt=0,
        description="protocol efficiency cap per flow (Mooncake on 8 x 400 Gbps EFA: ~556 Gbps "
        "untuned, ~1,360 tuned); None = links only",
    )
    core_oversubscription: float | None = Field(
        None, ge=1, description="core capacity = total host NIC bandwidth / this; None = no core"
    )
    layer_wise: bool = Field(
        False, description="stream the KV layer by layer while the prefill runs; off = after it"
    )
    layer_chunks: int | None = Field(
        None, ge=1, le=4096,
        description="layer-wise: chunks per transfer (consecutive layers grouped); None = one per "
        "model layer",
    )


# the [workload] variants live in cluster/workload/kinds.py; the synthetic one keeps its old name
WorkloadConfig = SyntheticWorkload


class PolicySpec(_Section):
    """A policy by registry name (or dotted path) with its parameters as extra keys."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "params" not in value:
            rest = {k: v for k, v in value.items() if k != "name"}
            return {"name": value.get("name"), "params": rest}
        return value


class PoliciesConfig(_Section):
    """Which router and batching policies run, with their parameters."""

    router: PolicySpec = Field(PolicySpec(name="round_robin"),
                               description="picks prefill and decode units")
    prefill_batching: PolicySpec = Field(PolicySpec(name="fcfs"),
                                         description="forms prefill batches inside a unit")
    decode_admission: PolicySpec = Field(PolicySpec(name="fcfs"),
                                         description="admits requests into the running batch")


class OutputConfig(_Section):
    """Where results go and how big the real KV payloads are."""

    dir: str = Field("results/{name}", description="output folder; {name} is the experiment name")
    payload_scale: float = Field(
        1e-3, ge=0, le=1, description="real payload bytes = modeled KV bytes x this"
    )
    sample_interval_s: float = Field(0.5, gt=0, description="timeseries grid, emu s")
    event_log: bool = Field(
        False, description="also write events.msgpack: the run's event log (arrivals, batches, "
        "transfers, admissions, ends; emu s), for `disagg trace`",
    )

    @field_validator("dir")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x")
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(f"bad placeholder ({type(e).__name__}: {e}); allowed: a path whose "
                             "only placeholder is {name}") from None
        if not value.strip():
            raise ValueError("empty; allowed: a path whose only placeholder is {name}")
        return value


class PlacementConfig(_Section):
    """Where units share hosts (``same_host``) and where actors run on a Ray cluster (ray
    engine)."""

    same_host: bool = Field(
        False, description="prefill and decode units share hosts (a DGX-style server): packed "
        "in order, prefill units first, onto hosts of hardware.chips_per_host chips; KV between "
        "units of one host moves over the intra-host link (NVLink-class, docs/fabric.md); both "
        "pools must use the same hardware")

    control: Literal["head", "any"] = Field(
        "head", description="router, fabric, collector, load generator: on the head node or anywhere"
    )
    unit_memory_mb: float = Field(
        128.0, gt=0, le=65_536,
        description="memory reserved per unit when nodes advertise no hardware (spread mode; "
        "an actor of N units reserves N x)",
    )
    ship_code: bool = Field(
        False, description="send the disagg package to the cluster's nodes (runtime_env py_modules)"
    )
    failure_poll_s: float = Field(
        0.5, gt=0, le=60, description="wall seconds between checks that every unit actor is alive"
    )
    hang_timeout_s: float = Field(
        10.0, gt=0, le=3600,
        description="wall seconds an actor may leave the supervisor's ping unanswered before it "
        "is declared hung: a hung unit is handled as a lost one, a hung control-plane actor ends "
        "the run (ray engine and serve; at least failure_poll_s is waited). 10 s: a ping answers "
        "in ~1 ms, but on a machine loaded many times over its cores a healthy actor has taken "
        "seconds; lower it to detect hangs sooner",
    )
    units_per_actor: int = Field(
        1, ge=1, le=64,
        description="unit components of one kind hosted by one Ray actor process (memory per "
        "unit); each is still its own component (not the fabric's units_per_host)",
    )
    one_control_actor: bool = Field(
        True, description="host the collector, router, fabric and load generator (serve: the "
        "gateway) in one Ray actor: their messages to each other cross no actor (about 2 actor "
        "calls fewer per request); false: one actor each, the control plane on several cores",
    )


class Experiment(_Section):
    """A whole experiment: what runs, on which cluster, under which workload and policies."""

    experiment: ExperimentSection
    model: ModelSpec
    prefill: PoolConfig | None = Field(None, description="prefill pool (with [decode])")
    decode: DecodePoolConfig | None = Field(None, description="decode pool (with [prefill])")
    colocated: ColocatedPoolConfig | None = Field(
        None, description="units doing both phases, instead of [prefill] and [decode]"
    )
    fabric: FabricConfig = FabricConfig()
    workload: WorkloadSpec = Field(description="see docs/workloads.md")
    slo: SloConfig
    policies: PoliciesConfig = PoliciesConfig()
    output: OutputConfig = OutputConfig()
    faults: list[FaultEntry] = Field(default_factory=list,
                                     description="injected faults, see docs/reliability.md")
    placement: PlacementConfig = PlacementConfig()
    prefix_cache: PrefixCacheConfig = PrefixCacheConfig()

    @field_validator("faults", mode="before")
    @classmethod
    def _legacy_faults(cls, value: Any) -> Any:
        return entries_from_legacy(value)

    @field_validator("model", mode="before")
    @classmethod
    def _resolve_model(cls, value: Any) -> Any:
        return _resolve(value, get_model, models)

    @model_validator(mode="after")
    def _pools(self) -> Experiment:
        if self.colocated is not None and (self.prefill is not None or self.decode is not None):
            raise ValueError("give either [colocated] or [prefill] and [decode], not both")
        if self.colocated is None and (self.prefill is None or self.decode is None):
            missing = "prefill" if self.prefill is None else "decode"
            raise ValueError(f"[{missing}] is missing: give [prefill] and [decode], "
                             "or one [colocated] pool")
        check_fault_kinds(self.faults, tuple(self.pools))
        if self.placement.same_host:
            check_same_host(self)
        return self

    @property
    def pools(self) -> dict[str, PoolConfig]:
        """The experiment's pools by unit kind: prefill and decode, or colocated alone."""
        if self.colocated is not None:
            return {"colocated": self.colocated}
        assert self.prefill is not None and self.decode is not None  # checked by _pools
        return {"prefill": self.prefill, "decode": self.decode}

    @property
    def first_pool(self) -> PoolConfig:
        """The pool new requests go to: prefill, or the colocated pool."""
        return next(iter(self.pools.values()))

    @property
    def last_pool(self) -> PoolConfig:
        """The pool that generates the output tokens: decode, or the colocated pool."""
        return list(self.pools.values())[-1]

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir.format(name=self.experiment.name))


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment TOML file; ``overrides`` maps dotted keys to values."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; allowed: an experiment TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); allowed: a UTF-8 TOML "
                          "experiment file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    apply_overrides(raw, overrides or {})
    return experiment_from_dict(raw, source=str(path), base_dir=path.parent)


def experiment_from_dict(raw: dict[str, Any], source: str = "<config>",
                         base_dir: Path | None = None) -> Experiment:
    """Validate a plain dict (as read from TOML) into an :class:`Experiment`; relative file
    paths in it (traces) are resolved against ``base_dir`` (default: the working folder)."""
    try:
        return Experiment.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, Experiment)}") from None

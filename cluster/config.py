"""The experiment config tree: one frozen pydantic model loaded from TOML.

``load_experiment(path, overrides)`` returns a validated :class:`Experiment` or raises
:class:`ConfigError` whose message names the field, the value and what is allowed.
Catalog names (model, hardware) are resolved to full specs, so the dumped config is complete.
The sections live beside it: the pools in ``pool_config.py``, ``[experiment]``, ``[output]`` and
``[placement]`` in ``run_config.py``; the fabric and policy sections here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from disagg.cluster.errors import ConfigError, describe_validation_error
from disagg.cluster.faults import FaultEntry, check_fault_kinds, entries_from_legacy
from disagg.cluster.hardware.catalog import get_model, models
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.overrides import apply_overrides
from disagg.cluster.pool_config import (
    ColocatedPoolConfig,
    DecodePoolConfig,
    PoolConfig,
    resolve_catalog_entry,
)
from disagg.cluster.prefix_cache import PrefixCacheConfig
from disagg.cluster.run_config import ExperimentSection, OutputConfig, PlacementConfig
from disagg.cluster.same_host import check_same_host
from disagg.cluster.section import Section as _Section
from disagg.cluster.slo import SloConfig
from disagg.cluster.workload.kinds import SyntheticWorkload, WorkloadSpec


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
        return resolve_catalog_entry(value, get_model, models)

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

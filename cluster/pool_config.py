"""The unit pools of the experiment config tree: ``[prefill]`` and ``[decode]`` (or one
``[colocated]`` pool) — which chips, how many per unit, how many units, and their price, power and
host NIC; plus the resolution of catalog names (model, hardware) into full specs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from disagg.cluster.hardware.catalog import UnknownCatalogEntry, get_hardware, hardware
from disagg.cluster.hardware.specs import HardwareProfile
from disagg.cluster.section import Section as _Section
from disagg.cluster.serving_config import ColocatedScheduler, DecodeMechanics


def resolve_catalog_entry(value: Any, getter: Callable[[str], BaseModel],
                          known: Callable[[], dict[str, Any]]) -> Any:
    """A ``[model]`` or pool ``hardware`` value before validation: a catalog name, a table naming
    a catalog entry (``base``, or ``name`` when it is a catalog name) plus overrides, or a full
    inline spec. With ``base`` the entry may be renamed (``name``); its sources follow it,
    overridden fields marked "user override"."""
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
        return resolve_catalog_entry(value, get_hardware, hardware)

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

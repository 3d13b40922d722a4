"""Config of the unit-side serving mechanics of decode and colocated pools (issue 22 items 1-3):
speculative decoding (``[decode.speculative]``), KV allocation (paged on demand, or reserved up
front) with preemption, and the colocated scheduler. What each models and the sources of the
defaults: docs/serving_mechanics.md."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from disagg.cluster.hardware.catalog import UnknownCatalogEntry, get_hardware, get_model
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.hardware.speculative import DEFAULT_HEAD_STEP_FRACTION, Speculation
from disagg.cluster.section import Section as _Section


def _by_name(value: Any, getter: Any) -> Any:
    """A catalog name resolved to its spec; anything else (an inline table) as given."""
    if isinstance(value, str):
        try:
            return getter(value)
        except UnknownCatalogEntry as e:
            raise ValueError(e.message) from None
    return value


class SpeculativeConfig(_Section):
    """Speculative decoding on every unit of the pool (docs/serving_mechanics.md)."""

    method: Literal["draft_model", "draft_heads"] = Field(
        description="a separate draft model, or draft heads on the target (EAGLE / Medusa / MTP)")
    num_speculative_tokens: int = Field(
        ge=1, le=16, description="gamma: tokens proposed per step; the target verifies gamma + 1")
    acceptance_rate: float = Field(
        ge=0, le=1, description="alpha: probability each proposed token is accepted (given the "
        "ones before it were); the workload's default")
    acceptance_rate_by_class: dict[str, float] = Field(
        default_factory=dict, description="alpha per SLO class (request slo_class -> alpha in "
        "[0, 1]); classes not named use acceptance_rate")
    draft_model: ModelSpec | None = Field(
        None, description="draft_model: catalog name or inline spec of the draft model")
    draft_hardware: HardwareProfile | None = Field(
        None, description="draft_model: the draft's own hardware (catalog name); None = it runs "
        "on the unit's chips and its weights take unit memory from the KV cache")
    draft_chips: int | None = Field(
        None, ge=1, le=1024, description="draft_model: chips of the draft's own hardware "
        "(default 1); only with draft_hardware")
    head_step_fraction: float = Field(
        DEFAULT_HEAD_STEP_FRACTION, gt=0, le=1, description="draft_heads: cost of one head pass "
        "as a fraction of a plain target decode step (EAGLE: one decoder layer + LM head)")
    fused: bool = Field(
        False, description="draft_model: draft and target compiled into one graph (NxD "
        "Inference's fused speculation): the draft steps pay no per-step host overhead")

    @field_validator("draft_model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _by_name(value, get_model)

    @field_validator("draft_hardware", mode="before")
    @classmethod
    def _hardware(cls, value: Any) -> Any:
        return _by_name(value, get_hardware)

    @field_validator("acceptance_rate_by_class")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"rates {bad} out of range; allowed: numbers in [0, 1]")
        return value

    @model_validator(mode="after")
    def _method(self) -> SpeculativeConfig:
        if self.method == "draft_model" and self.draft_model is None:
            raise ValueError("method draft_model needs draft_model (a catalog model name)")
        if self.method == "draft_heads" and self.draft_model is not None:
            raise ValueError("method draft_heads takes no draft_model; allowed: method = "
                             "\"draft_model\" with draft_model, or draft_heads without")
        if self.fused and self.method != "draft_model":
            raise ValueError("fused applies to method draft_model only; allowed: fused = false "
                             "with draft_heads")
        if self.draft_chips is not None and self.draft_hardware is None:
            raise ValueError("draft_chips needs draft_hardware (the draft's own chips)")
        return self

    def speculation(self) -> Speculation:
        """The pure form the units and the perf model use."""
        return Speculation(
            self.method, self.num_speculative_tokens, self.acceptance_rate,
            tuple(sorted(self.acceptance_rate_by_class.items())), self.draft_model,
            self.draft_hardware, self.draft_chips or 1, self.head_step_fraction, self.fused)

    @property
    def draft_weight_bytes_on_unit(self) -> float:
        """Draft weights held in the unit's own memory (bytes): a draft on the unit's chips."""
        if self.draft_model is None or self.draft_hardware is not None:
            return 0.0
        return self.draft_model.weight_bytes


ColocatedScheduler = Literal["vllm_v1", "vllm_v0"]


class DecodeMechanics(_Section):
    """Fields a decode or colocated pool adds to a plain pool (docs/serving_mechanics.md)."""

    speculative: SpeculativeConfig | None = Field(
        None, description="speculative decoding ([decode.speculative]); None = plain decoding")
    kv_allocation: Literal["paged", "reserve"] = Field(
        "paged", description="paged: KV blocks allocated as tokens are generated, admission by "
        "free blocks above a watermark, preemption when a step cannot grow (vLLM); reserve: "
        "prompt + output tokens reserved at admission, no preemption")
    kv_block_tokens: int = Field(
        16, ge=1, le=4096, description="paged: tokens per KV block (vLLM's default block_size)")
    kv_watermark: float = Field(
        0.01, ge=0, lt=1, description="paged: fraction of KV blocks a new request may not take "
        "(vLLM's default watermark, 1 %)")
    preemption: Literal["recompute", "swap"] = Field(
        "recompute", description="paged: a preempted request's KV is dropped and recomputed "
        "(a prefill of its context on the unit) when it resumes, or swapped to host memory and "
        "back")
    swap_bytes_per_s_per_chip: float = Field(
        25e9, gt=0, description="swap: host link bandwidth per chip, bytes/s (PCIe 4.0 x16: "
        "32 GB/s peak per direction, ~25 GB/s achieved; the catalog has no host-link figure)")

"""Model and hardware specifications: the numbers the performance models read.

Both are frozen pydantic models so that an experiment file can give one inline (a chip we do not
ship) with the same validation as the catalog's own entries. Every number in a catalog entry names
its source in ``sources`` (field name -> source string); inline specs may leave it empty.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Frozen):
    """A transformer's shape: enough to derive weight bytes, KV bytes per token and FLOPs."""

    name: str = Field(description="catalog name or a label for an inline model")
    layers: int = Field(gt=0, description="transformer layers")
    hidden_size: int = Field(gt=0)
    q_heads: int = Field(gt=0, description="attention (query) heads")
    kv_heads: int = Field(gt=0, description="key/value heads (GQA)")
    head_dim: int = Field(gt=0)
    ffn_size: int = Field(gt=0, description="FFN intermediate size (per expert for MoE)")
    vocab: int = Field(gt=0)
    total_params: float = Field(gt=0, description="parameters held in memory")
    active_params: float = Field(gt=0, description="parameters used per token (MoE: < total)")
    weight_bytes_per_param: float = Field(2.0, gt=0, description="2 = BF16, 1 = FP8")
    kv_bytes_per_element: float = Field(2.0, gt=0, description="2 = BF16 KV cache, 1 = FP8")
    sliding_window_layers: int = Field(0, ge=0, description="layers with a sliding-window KV")
    sliding_window_tokens: int = Field(0, ge=0, description="window length of those layers")
    max_context_tokens: int | None = Field(
        None, gt=0, description="longest prompt + output the model accepts (None = unchecked)")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> source string")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.active_params > self.total_params:
            raise ValueError(f"active_params {self.active_params} exceeds total_params")
        if self.sliding_window_layers > self.layers:
            raise ValueError("sliding_window_layers exceeds layers")
        if self.kv_heads > self.q_heads:
            raise ValueError("kv_heads exceeds q_heads")
        return self

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights for one copy of the model."""
        return self.total_params * self.weight_bytes_per_param

    @property
    def kv_bytes_per_token_per_layer(self) -> float:
        """K and V for one token in one layer: 2 x kv_heads x head_dim x bytes per element."""
        return 2 * self.kv_heads * self.head_dim * self.kv_bytes_per_element


DecodeModel = Literal["roofline", "wafer_pipeline"]


class HardwareProfile(_Frozen):
    """One chip or system: compute, memory, network, power and price, with efficiency factors.

    A *unit* (one actor) is ``chips_per_unit`` of these working as one tensor-parallel group
    (roofline hardware) or as a pipeline of wafers (``decode_model = "wafer_pipeline"``).
    """

    name: str
    peak_flops_bf16: float = Field(gt=0, description="dense BF16 FLOP/s per chip")
    peak_flops_fp8: float = Field(gt=0, description="dense FP8 FLOP/s per chip")
    memory_bytes: float = Field(gt=0, description="memory that holds weights and KV, per chip")
    memory_bandwidth_bytes_per_s: float = Field(gt=0, description="per chip")
    interconnect_bytes_per_s: float = Field(gt=0, description="chip-to-chip bandwidth per chip")
    power_w: float | None = Field(None, gt=0, description="per chip; None when unpublished")
    price_per_hour_usd: float | None = Field(None, gt=0, description="per chip; None if unknown")
    compute_efficiency: float = Field(0.5, gt=0, le=1, description="achieved / peak FLOP/s")
    memory_efficiency: float = Field(0.67, gt=0, le=1, description="achieved / peak bandwidth")
    step_overhead_s: float = Field(0.0, ge=0, description="fixed cost per prefill batch / decode step")
    chips_per_host: int = Field(1, gt=0, description="chips in one instance (host)")
    host_nic_bytes_per_s: float = Field(gt=0, description="EFA (or system I/O) per host")
    decode_model: DecodeModel = "roofline"
    layer_latency_s: float = Field(0.0, ge=0, description="wafer_pipeline: latency per layer")
    hop_latency_s: float = Field(0.0, ge=0, description="wafer_pipeline: wafer-to-wafer hop")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> source string")

    @model_validator(mode="after")
    def _check(self) -> HardwareProfile:
        if self.decode_model == "wafer_pipeline" and self.layer_latency_s <= 0:
            raise ValueError("wafer_pipeline hardware needs layer_latency_s > 0")
        return self

"""Model and hardware specifications: the numbers the performance models read.

Both are frozen pydantic models so that an experiment file can give one inline (a chip we do not
ship) with the same validation as the catalog's own entries. Every number in a catalog entry names
its source in ``sources`` (field name -> source string); inline specs may leave it empty.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Dtype = Literal["bf16", "fp16", "fp8"]
DTYPE_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    weight_dtype: Dtype | None = Field(
        None, description="bf16 | fp16 | fp8: sets weight_bytes_per_param, winning over it (and "
        "FP8 peak FLOP/s for fp8); None = keep weight_bytes_per_param")
    kv_dtype: Dtype | None = Field(
        None, description="bf16 | fp16 | fp8: sets kv_bytes_per_element, winning over it; None = "
        "keep it")
    experts: int = Field(0, ge=0, description="MoE: routed experts per layer (0 = dense)")
    experts_per_token: int = Field(0, ge=0, description="MoE: experts each token activates (top-k)")
    sliding_window_layers: int = Field(0, ge=0, description="layers with a sliding-window KV")
    sliding_window_tokens: int = Field(0, ge=0, description="window length of those layers")
    max_context_tokens: int | None = Field(
        None, gt=0, description="longest prompt + output the model accepts (None = unchecked)")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> source string")

    @model_validator(mode="before")
    @classmethod
    def _dtypes(cls, value: Any) -> Any:
        """A dtype, when given, wins over the byte count it implies (an override of a catalog
        entry carries the entry's byte count along)."""
        if not isinstance(value, dict):
            return value
        out = dict(value)
        if out.get("weight_dtype") in DTYPE_BYTES:
            out["weight_bytes_per_param"] = DTYPE_BYTES[out["weight_dtype"]]
        if out.get("kv_dtype") in DTYPE_BYTES:
            out["kv_bytes_per_element"] = DTYPE_BYTES[out["kv_dtype"]]
        return out

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.experts_per_token > self.experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} exceeds experts")
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
    def embedding_params(self) -> float:
        """Input embedding plus output head, vocab x hidden each (untied, as in Llama 3)."""
        return 2.0 * self.vocab * self.hidden_size

    @property
    def expert_params(self) -> float:
        """Parameters of one expert in one layer: gate, up and down projections (3 x hidden x
        ffn)."""
        return 3.0 * self.hidden_size * self.ffn_size if self.experts else 0.0

    @property
    def layer_active_params(self) -> float:
        """Parameters one token uses in one layer (embeddings excluded): the layer's size."""
        return max(self.active_params - self.embedding_params, 0.0) / self.layers

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
    peak_flops_fp8: float | None = Field(
        None, gt=0, description="dense FP8 FLOP/s per chip; None = the chip has no FP8 (an FP8 "
        "weight dtype is refused on it)")
    memory_bytes: float = Field(gt=0, description="memory that holds weights and KV, per chip")
    memory_bandwidth_bytes_per_s: float = Field(gt=0, description="per chip")
    interconnect_bytes_per_s: float = Field(gt=0, description="chip-to-chip bandwidth per chip")
    intra_host_bytes_per_s: float | None = Field(
        None, gt=0, description="KV copy between chips of one host, one direction, per chip "
        "(NVLink-class); None = interconnect_bytes_per_s")
    intra_host_latency_s: float = Field(
        5e-6, ge=0, le=1, description="fixed latency of a KV copy inside one host (same-host "
        "placement); default an assumption, see docs/fabric.md")
    power_w: float | None = Field(None, gt=0, description="per chip; None when unpublished")
    price_per_hour_usd: float | None = Field(None, gt=0, description="per chip; None if unknown")
    compute_efficiency: float = Field(0.5, gt=0, le=1, description="achieved / peak FLOP/s")
    memory_efficiency: float = Field(0.67, gt=0, le=1, description="achieved / peak bandwidth")
    step_overhead_s: float = Field(
        0.0, ge=0, description="fixed cost per prefill batch / decode step")
    layer_overhead_s: float = Field(
        0.0, ge=0, description="roofline: fixed cost per layer per step (kernel launches), any TP")
    tp_layer_latency_s: float = Field(
        0.0, ge=0, description="roofline: per layer, per doubling of the tensor-parallel degree "
        "(collective latency and launch; x log2(chips), 0 on one chip)")
    activation_bytes: float = Field(
        2.0, gt=0, description="bytes per activation element all-reduced (2 = BF16 activations)")
    concurrency_exponent: float = Field(
        0.0, ge=0, le=1, description="decode: the step's latency floor (wafer pipeline) or fixed "
        "part (roofline) grows as max(1, streams / concurrency_free_streams) ** this; 0 = flat "
        "until compute- or memory-bound, 1 = streams share the pipeline (total speed constant)")
    concurrency_free_streams: float = Field(
        1.0, ge=1, description="decode: streams that share a step at no slowdown")
    chips_per_host: int = Field(1, gt=0, description="chips in one instance (host)")
    host_nic_bytes_per_s: float = Field(gt=0, description="EFA (or system I/O) per host")
    decode_model: DecodeModel = "roofline"
    layer_latency_s: float = Field(0.0, ge=0, description="wafer_pipeline: fixed latency per layer")
    layer_latency_s_per_gparam: float = Field(
        0.0, ge=0, description="wafer_pipeline: extra latency per layer per billion parameters "
        "the layer applies to a token (the layer's size)")
    pipeline_compute_efficiency: float = Field(
        0.0, ge=0, le=1, description="wafer_pipeline: fraction of a wafer's peak FLOP/s one "
        "token's layers achieve, each layer on its share (1 / layers on the wafer) of the "
        "wafer; 0 = no compute term in the single-token latency")
    token_latency_s: float = Field(
        0.0, ge=0, description="wafer_pipeline: fixed cost per generated token (sampling, I/O)")
    hop_latency_s: float = Field(0.0, ge=0, description="wafer_pipeline: wafer-to-wafer hop")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> source string")

    @model_validator(mode="after")
    def _check(self) -> HardwareProfile:
        floor = self.layer_latency_s + self.layer_latency_s_per_gparam + self.token_latency_s
        if self.decode_model == "wafer_pipeline" and floor <= 0:
            raise ValueError("wafer_pipeline hardware needs a positive per-layer or per-token "
                             "latency")
        return self

    @property
    def fp8_capable(self) -> bool:
        """True when the chip has FP8 compute (``peak_flops_fp8`` given)."""
        return self.peak_flops_fp8 is not None

    @property
    def intra_host_copy_bytes_per_s(self) -> float:
        """Bandwidth of one chip's KV copy to another chip of its host, one direction."""
        return self.intra_host_bytes_per_s or self.interconnect_bytes_per_s

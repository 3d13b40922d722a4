"""The shipped catalog of models and hardware, every number with its source.

Sources are quoted from ``shared/reference/calibration.md`` ([V] vendor or primary, [2] secondary
quoting the vendor, "derived" computed here, "assumption" chosen here for lack of a published
figure). Entries are built on first use, not at import time.
"""

from __future__ import annotations

import difflib
from functools import cache

from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec

GIB = 2**30
GBPS = 1e9 / 8  # bytes/s in one Gbit/s

_LLAMA_SRC = "[V] meta-llama/llama-models sku_list.py"


class UnknownCatalogEntry(KeyError):
    """A model or hardware name that the catalog does not hold."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown {kind} {name!r}; known: {', '.join(known)}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def _llama(name: str, params: float, layers: int, hidden: int, q: int, ffn: int) -> ModelSpec:
    return ModelSpec(
        name=name, layers=layers, hidden_size=hidden, q_heads=q, kv_heads=8, head_dim=128,
        ffn_size=ffn, vocab=128_256, total_params=params, active_params=params,
        max_context_tokens=131_072,
        sources={"shape": _LLAMA_SRC, "weight_bytes_per_param": "BF16 weights (assumption)",
                 "max_context_tokens": "[V] Llama 3.1 model card (128K context; config.json "
                                       "max_position_embeddings 131072)"},
    )


@cache
def models() -> dict[str, ModelSpec]:
    """Catalog models by name."""
    entries = [
        _llama("llama-3.1-8b", 8.03e9, 32, 4_096, 32, 14_336),
        _llama("llama-3.1-70b", 70.55e9, 80, 8_192, 64, 28_672),
        _llama("llama-3.1-405b", 405.85e9, 126, 16_384, 128, 53_248),
        ModelSpec(
            name="qwen3-32b", layers=64, hidden_size=5_120, q_heads=64, kv_heads=8, head_dim=128,
            ffn_size=25_600, vocab=151_936, total_params=32.76e9, active_params=32.76e9,
            max_context_tokens=32_768,
            sources={"shape": "[V] Qwen3 technical report",
                     "max_context_tokens": "[V] Qwen3-32B model card (32,768 native; 131,072 "
                                           "only with YaRN scaling)"},
        ),
        ModelSpec(
            name="gpt-oss-120b", layers=36, hidden_size=2_880, q_heads=64, kv_heads=8,
            head_dim=64, ffn_size=2_880, vocab=201_088, total_params=116.8e9,
            active_params=5.1e9, sliding_window_layers=18, sliding_window_tokens=128,
            max_context_tokens=131_072,
            sources={
                "max_context_tokens": "[V] gpt-oss model card (128k context; config.json "
                                      "max_position_embeddings 131072)",
                "shape": "[V] vLLM GptOssConfig (MoE, 128 experts, top-4)",
                "weight_bytes_per_param": "16-bit weights as Cerebras serves them (assumption)",
            },
        ),
    ]
    return {m.name: m for m in entries}


def fit_layer_latency_s(
    model: ModelSpec, tokens_per_s: float, wafers: int, hop_latency_s: float
) -> float:
    """Per-layer latency that makes a wafer pipeline decode one stream at ``tokens_per_s``.

    Single-stream step time = layers x layer latency + (wafers - 1) x hop latency, so
    layer latency = (1 / tokens_per_s - (wafers - 1) x hop) / layers.
    """
    step_s = 1.0 / tokens_per_s - (wafers - 1) * hop_latency_s
    if step_s <= 0:
        raise ValueError("hop latency alone exceeds the published step time")
    return step_s / model.layers


CS3_HOP_LATENCY_S = 5e-6  # assumption: no published wafer-to-wafer figure
CS3_FIT = ("llama-3.1-70b", 2_100.0, 4)  # model, published tok/s per user, wafers


@cache
def hardware() -> dict[str, HardwareProfile]:
    """Catalog hardware by name (one chip or system each)."""
    neuron = "[V] AWS Neuron docs, arch/neuron-hardware"
    gpu = "[2] NVIDIA whitepapers as quoted by glennklockwood.com"
    gpu_eff = "derived: Llama-3.1-70B at 128 tok/s on 8 x H100 = ~67% of HBM peak"
    prefill_eff = "assumption: 50% of dense peak in prefill"
    fit_model, fit_tps, fit_wafers = CS3_FIT
    entries = [
        HardwareProfile(
            name="trainium2", peak_flops_bf16=667e12, peak_flops_fp8=1_299e12,
            memory_bytes=96 * GIB, memory_bandwidth_bytes_per_s=2.9e12,
            interconnect_bytes_per_s=1.28e12, price_per_hour_usd=35.76 / 16,
            chips_per_host=16, host_nic_bytes_per_s=3_200 * GBPS,
            sources={
                "compute/memory/interconnect": f"{neuron} trainium2",
                "price_per_hour_usd": "derived: trn2.48xlarge Capacity Block $35.76/h "
                "(AWS Capacity Blocks pricing, US East Ohio, 2026-10) / 16 chips",
                "chips_per_host/host_nic": "[V] Neuron docs trn2-arch: 16 chips, EFA 3,200 Gbps",
                "compute_efficiency": prefill_eff, "memory_efficiency": gpu_eff + " (assumed)",
                "power_w": "not published",
            },
        ),
        HardwareProfile(
            name="trainium3", peak_flops_bf16=671e12, peak_flops_fp8=2_517e12,
            memory_bytes=144 * GIB, memory_bandwidth_bytes_per_s=4.9e12,
            interconnect_bytes_per_s=2.56e12, power_w=1_000.0,
            chips_per_host=64, host_nic_bytes_per_s=64 * 200 * GBPS,
            sources={
                "compute/memory/interconnect": f"{neuron} trainium3",
                "power_w": "[2] press, ~1 kW",
                "chips_per_host/host_nic": "[V] Neuron docs trn3-arch: UltraServer Gen1, 64 chips,"
                " 200 Gbps per chip (derived 12,800/64)",
                "compute_efficiency": prefill_eff, "price_per_hour_usd": "not published",
            },
        ),
        HardwareProfile(
            name="cs3", peak_flops_bf16=125e15, peak_flops_fp8=125e15,
            memory_bytes=44e9, memory_bandwidth_bytes_per_s=21e15,
            interconnect_bytes_per_s=1.56e12 / 8, power_w=23_000.0,
            chips_per_host=1, host_nic_bytes_per_s=1.56e12 / 8,
            decode_model="wafer_pipeline", hop_latency_s=CS3_HOP_LATENCY_S,
            layer_latency_s=fit_layer_latency_s(
                models()[fit_model], fit_tps, fit_wafers, CS3_HOP_LATENCY_S
            ),
            sources={
                "memory_bytes/bandwidth": "[2] nextplatform.com 2024-03-14: 44 GB SRAM, 21 PB/s",
                "peak_flops": "[2] The Register 2024-03: 125 PFLOP/s sparse FP16 (dense "
                "unpublished; used as peak with compute_efficiency 0.5, an assumption)",
                "interconnect/host_nic": "derived: CS-2 1.2 Tb/s (Argonne SC24) + 30% = 1.56 Tb/s",
                "power_w": "[2] third-party hardware summaries, ~23 kW",
                "layer_latency_s": "derived: fitted so Llama-3.1-70B on 4 CS-3 decodes 2,100 "
                "tok/s per user ([V] Cerebras blog 2024-10; reportedly with speculative decoding)",
                "hop_latency_s": "assumption: 5 us per wafer-to-wafer hop (no published figure)",
                "price_per_hour_usd": "not published; set price_per_chip_hour_usd in the pool",
            },
        ),
        _gpu("h100", 989e12, 1_979e12, 80e9, 3.35e12, 900e9, 700.0, 39.33 / 8,
             "derived: p5.48xlarge Capacity Block $39.33/h [2] / 8 GPUs", gpu, gpu_eff),
        _gpu("h200", 989e12, 1_979e12, 141e9, 4.8e12, 900e9, 700.0, 43.26 / 8,
             "derived: p5e Capacity Block $43.26/h [2] / 8 GPUs", gpu, gpu_eff),
        _gpu("b200", 2_250e12, 4_500e12, 180e9, 8e12, 1.8e12, 1_000.0, None,
             "not published in the reference", gpu, gpu_eff),
    ]
    return {h.name: h for h in entries}


def _gpu(name: str, bf16: float, fp8: float, mem: float, bw: float, nvlink: float,
         power_w: float, price: float | None, price_src: str, src: str,
         eff_src: str) -> HardwareProfile:
    return HardwareProfile(
        name=name, peak_flops_bf16=bf16, peak_flops_fp8=fp8, memory_bytes=mem,
        memory_bandwidth_bytes_per_s=bw, interconnect_bytes_per_s=nvlink, power_w=power_w,
        price_per_hour_usd=price, chips_per_host=8, host_nic_bytes_per_s=3_200 * GBPS,
        sources={
            "compute/memory/nvlink/power": src, "price_per_hour_usd": price_src,
            "memory_efficiency": eff_src, "compute_efficiency": "assumption: 50% of dense peak",
            "host_nic": "[V] AWS EC2 docs: p5.48xlarge EFA 3,200 Gbps (assumed for this family)",
        },
    )


def get_model(name: str) -> ModelSpec:
    """A catalog model by name; raises :class:`UnknownCatalogEntry` listing the known names."""
    try:
        return models()[name]
    except KeyError:
        raise UnknownCatalogEntry("model", name, sorted(models())) from None


def get_hardware(name: str) -> HardwareProfile:
    """A catalog hardware profile by name; raises :class:`UnknownCatalogEntry`."""
    try:
        return hardware()[name]
    except KeyError:
        raise UnknownCatalogEntry("hardware", name, sorted(hardware())) from None

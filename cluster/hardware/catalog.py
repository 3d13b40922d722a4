"""The shipped catalog of models and hardware, every number with its source.

Sources are quoted from ``shared/reference/calibration.md`` ([V] vendor or primary, [2] secondary
quoting the vendor, "derived" computed here, "assumption" chosen here for lack of a published
figure). Entries are built on first use, not at import time.
"""

from __future__ import annotations

import difflib
from functools import cache

from disagg.cluster.hardware.catalog_literature import literature_hardware, literature_models
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
            name="gpt-oss-120b", experts=128, experts_per_token=4, layers=36,
            hidden_size=2_880, q_heads=64, kv_heads=8, head_dim=64, ffn_size=2_880,
            vocab=201_088, total_params=116.8e9,
            active_params=5.1e9, sliding_window_layers=18, sliding_window_tokens=128,
            max_context_tokens=131_072,
            sources={
                "max_context_tokens": "[V] gpt-oss model card (128k context; config.json "
                                      "max_position_embeddings 131072)",
                "shape": "[V] vLLM GptOssConfig (MoE, 128 experts, top-4)",
                "weight_bytes_per_param": "16-bit weights as Cerebras serves them (assumption)",
            },
        ),
        *literature_models(),
    ]
    return {m.name: m for m in entries}


# Constants fitted by disagg.cluster.hardware.fit (``disagg calibrate`` re-runs the fit, prints
# both, and tests/test_calibrate.py checks they agree); rounded to 3 significant digits.
H100_FIT = {"compute_efficiency": 0.485, "memory_efficiency": 0.9, "layer_overhead_s": 60.5e-6}
TRN2_FIT = {"compute_efficiency": 0.277, "tp_layer_latency_s": 44.3e-6}
CS3_FIT = {"token_latency_s": 234e-6, "pipeline_compute_efficiency": 0.0111}
TRN2_VLLM_FIT = {"step_overhead_s": 4.93e-3}
_H100_SRC = ("fitted (least squares, disagg calibrate) to NIM 1.8.0 Llama-3.3-70B 2 x H100 FP8 TP2 "
             "5000/500: TTFT and ITL at concurrency 1, ITL at concurrency 5")
_TRN2_SRC = ("fitted (least squares, disagg calibrate) to Neuron trn2 Llama-3.3-70B TP64 (16 chips)"
             ", 10,000/1,500 run A: TTFT 575.7 ms, ITL 19.83 ms")
_CS3_SRC = ("fitted (least squares, disagg calibrate) to the plain single-user speeds of Cerebras' "
            "launch software (2024-08): Llama 3.1 8B 1,800 tok/s (1 wafer) and Llama 3.1 70B 450 "
            "tok/s (4 wafers); the later, speculative figures are predictions")
_TRN2_VLLM_SRC = ("fitted (least squares, disagg calibrate) to ONE figure: vLLM-neuron (SDK 2.32) "
                  "Llama-3.1-8B TP8 on 2 trn2 chips, 512/128 at concurrency 2, TPOT 10.52 ms; "
                  "the stack's other rows (8B TTFT, gpt-oss-120B, the EAGLE3 rows) are "
                  "predictions")
CS3_HOP_LATENCY_S = 5e-6  # assumption: no published wafer-to-wafer figure


def _fitted(values: dict[str, float], source: str) -> dict[str, str]:
    return {k: source for k in values}


@cache
def hardware() -> dict[str, HardwareProfile]:
    """Catalog hardware by name (one chip or system each)."""
    trn2, trn3, cs3 = _trainium2(), _trainium3(), _cs3()
    trn2_vllm = _trainium2_vllm(trn2)
    h100 = _gpu("h100", 989e12, 1_979e12, 80e9, 3.35e12, 900e9, 700.0, 39.33 / 8,
                "derived: p5.48xlarge Capacity Block $39.33/h [2] / 8 GPUs")
    h200 = _gpu("h200", 989e12, 1_979e12, 141e9, 4.8e12, 900e9, 700.0, 43.26 / 8,
                "derived: p5e Capacity Block $43.26/h [2] / 8 GPUs")
    b200 = _gpu("b200", 2_250e12, 4_500e12, 180e9, 8e12, 1.8e12, 1_000.0, 113.93 / 8,
                "assumption: ~$113.93/h for 8 GPUs (a p6-b200.48xlarge on-demand figure, "
                "unverified and not in the reference): set price_per_chip_hour_usd")
    return {h.name: h for h in (trn2, trn2_vllm, trn3, cs3, h100, h200, b200,
                                *literature_hardware())}


_NEURON = "[V] AWS Neuron docs, arch/neuron-hardware"
_TRN_ASSUMED = {
    "memory_efficiency": "assumption: 0.67 of peak HBM bandwidth, the GPU decode figure derived "
    "from Llama-3.1-70B at 128 tok/s on 8 x H100 (not identifiable from one TP configuration)",
    "step_overhead_s": "assumption: 1 ms per iteration of host scheduling (not identifiable from "
    "one TP configuration: it trades off against tp_layer_latency_s)",
    "layer_overhead_s": "assumption: 0; the fixed per-layer cost at TP64 is attributed to the "
    "collectives (tp_layer_latency_s), as in the reference's derivation",
    "concurrency": "assumption: batched decode follows the roofline (exponent 0); the Neuron docs "
    "publish no batched curve — sweep concurrency_exponent",
}


def _trainium2() -> HardwareProfile:
    return HardwareProfile(
        name="trainium2", peak_flops_bf16=667e12, peak_flops_fp8=1_299e12,
        memory_bytes=96 * GIB, memory_bandwidth_bytes_per_s=2.9e12,
        interconnect_bytes_per_s=1.28e12, price_per_hour_usd=35.76 / 16, power_w=500.0,
        chips_per_host=16, host_nic_bytes_per_s=3_200 * GBPS, memory_efficiency=0.67,
        step_overhead_s=1e-3, **TRN2_FIT,
        sources={
            "compute/memory/interconnect": f"{_NEURON} trainium2",
            "price_per_hour_usd": "derived: trn2.48xlarge Capacity Block $35.76/h "
            "(AWS Capacity Blocks pricing, US East Ohio, 2026-10) / 16 chips",
            "chips_per_host/host_nic": "[V] Neuron docs trn2-arch: 16 chips, EFA 3,200 Gbps",
            "power_w": "assumption: 500 W per chip (not published; Trainium3 is ~1 kW [2])",
            **_TRN_ASSUMED, **_fitted(TRN2_FIT, _TRN2_SRC),
        },
    )


def _trainium2_vllm(trn2: HardwareProfile) -> HardwareProfile:
    """Trainium2 under the vLLM-neuron serving stack: the chip's constants (fitted on the NxD
    Inference 70B run) with the stack's own per-iteration host overhead, fitted to one figure."""
    return trn2.model_copy(update={
        "name": "trainium2-vllm-neuron", **TRN2_VLLM_FIT,
        "sources": {**trn2.sources, **_fitted(TRN2_VLLM_FIT, _TRN2_VLLM_SRC)}})


def _trainium3() -> HardwareProfile:
    return HardwareProfile(
        name="trainium3", peak_flops_bf16=671e12, peak_flops_fp8=2_517e12,
        memory_bytes=144 * GIB, memory_bandwidth_bytes_per_s=4.9e12,
        interconnect_bytes_per_s=2.56e12, power_w=1_000.0,
        chips_per_host=64, host_nic_bytes_per_s=64 * 200 * GBPS, memory_efficiency=0.67,
        step_overhead_s=1e-3, **TRN2_FIT,
        sources={
            "compute/memory/interconnect": f"{_NEURON} trainium3",
            "power_w": "[2] press, ~1 kW",
            "chips_per_host/host_nic": "[V] Neuron docs trn3-arch: UltraServer Gen1, 64 chips,"
            " 200 Gbps per chip (derived 12,800/64)",
            "price_per_hour_usd": "not published; set price_per_chip_hour_usd in the pool",
            **_TRN_ASSUMED,
            **_fitted(TRN2_FIT, "assumption: Trainium2's fitted value (no Trainium3 figure "
                      "published); " + _TRN2_SRC),
        },
    )


def _cs3() -> HardwareProfile:
    return HardwareProfile(
        name="cs3", peak_flops_bf16=125e15, peak_flops_fp8=125e15,
        memory_bytes=44e9, memory_bandwidth_bytes_per_s=21e15,
        interconnect_bytes_per_s=1.56e12 / 8, power_w=23_000.0, price_per_hour_usd=114.0,
        chips_per_host=1, host_nic_bytes_per_s=1.56e12 / 8,
        decode_model="wafer_pipeline", hop_latency_s=CS3_HOP_LATENCY_S, compute_efficiency=0.25,
        concurrency_exponent=0.5, concurrency_free_streams=1.0, layer_latency_s=0.0, layer_latency_s_per_gparam=0.0,
        **CS3_FIT,
        sources={
            "memory_bytes/bandwidth": "[2] nextplatform.com 2024-03-14: 44 GB SRAM, 21 PB/s",
            "peak_flops": "[2] The Register 2024-03: 125 PFLOP/s sparse FP16 (dense "
            "unpublished)",
            "compute_efficiency": "assumption: 0.25 of the sparse headline = half of it dense "
            "(2:1 sparsity) at 50 % utilisation; sets CS-3 prefill and large-batch decode",
            "interconnect/host_nic": "derived: CS-2 1.2 Tb/s (Argonne SC24) + 30% = 1.56 Tb/s",
            "power_w": "[2] third-party hardware summaries, ~23 kW (assumption for the default)",
            "price_per_hour_usd": "assumption: ~$3M per system (unconfirmed press estimates) "
            "amortised over 3 years of continuous use = $114/h, power and hosting excluded",
            "hop_latency_s": "assumption: 5 us per wafer-to-wafer hop (no published figure)",
            "concurrency": "assumption (default): per-user speed falls as 1/sqrt(streams) "
            "(exponent 0.5, 1 free stream); nobody publishes CS-3 multi-user curves — sweep "
            "concurrency_exponent from 0 (flat) to 1 (shared pipeline)",
            "layer_latency_s": "assumption: 0 (a size-independent per-layer latency; two plain "
            "figures cannot separate it from the compute term; range 0-10 us)",
            "layer_latency_s_per_gparam": "0: the layer's size enters through its FLOPs over "
            "its share of the wafer (pipeline_compute_efficiency)",
            **_fitted(CS3_FIT, _CS3_SRC),
        },
    )


_GPU_SRC = "[2] NVIDIA whitepapers as quoted by glennklockwood.com"


def _gpu(name: str, bf16: float, fp8: float, mem: float, bw: float, nvlink: float,
         power_w: float, price: float | None, price_src: str) -> HardwareProfile:
    fitted_src = _H100_SRC if name == "h100" else (
        "assumption: H100's fitted value (same serving stack); " + _H100_SRC)
    return HardwareProfile(
        name=name, peak_flops_bf16=bf16, peak_flops_fp8=fp8, memory_bytes=mem,
        memory_bandwidth_bytes_per_s=bw, interconnect_bytes_per_s=nvlink, power_w=power_w,
        price_per_hour_usd=price, chips_per_host=8, host_nic_bytes_per_s=3_200 * GBPS,
        intra_host_bytes_per_s=nvlink / 2, intra_host_latency_s=5e-6, tp_layer_latency_s=15e-6, step_overhead_s=0.5e-3, **H100_FIT,
        sources={
            "compute/memory/nvlink/power": _GPU_SRC, "price_per_hour_usd": price_src,
            "intra_host_bytes_per_s": f"derived: NVLink {nvlink / 1e9:,.0f} GB/s total / 2 (one "
            f"direction of a KV copy); {_GPU_SRC}",
            "intra_host_latency_s": "assumption: 5 us per NVLink copy (launch and first byte; "
            "no published figure)",
            "step_overhead_s": "assumption: 0.5 ms per iteration of host-side scheduling and "
            "sampling (in-flight batching); one model size cannot separate it from the per-layer "
            "cost",
            "tp_layer_latency_s": "assumption: 15 us per layer per doubling of TP (two NCCL "
            "all-reduces of small messages over NVLink; not identifiable from one TP size)",
            "host_nic": "[V] AWS EC2 docs: p5.48xlarge EFA 3,200 Gbps (assumed for this family)",
            **_fitted(H100_FIT, fitted_src),
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

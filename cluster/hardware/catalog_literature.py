"""Catalog entries for the literature's reference hardware and models (DistServe, Splitwise,
vLLM and MLPerf studies): A100 GPUs, OPT, Llama 2, BLOOM, Qwen3 and Llama 4, each number with
its source. Shapes come from each model's published Hugging Face ``config.json`` (or its paper);
entries are built on first use by :mod:`disagg.cluster.hardware.catalog`.

Efficiencies of a chip no calibration fitted (the A100s) are left at the documented defaults
(:data:`DEFAULT_EFFICIENCY`); ``disagg validate`` warns when a pool runs on such a chip.
"""

from __future__ import annotations

from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec

GBPS = 1e9 / 8  # bytes/s in one Gbit/s

DEFAULT_EFFICIENCY = {"compute_efficiency": 0.5, "memory_efficiency": 0.67}
"""Efficiencies used for a chip no calibration fitted: 0.5 of peak FLOP/s (the HardwareProfile
default, between the fitted H100 0.485 and a typical large-GEMM MFU) and 0.67 of peak HBM
bandwidth (Llama-3.1-70B at 128 tok/s on 8 x H100, shared/reference/calibration.md)."""
DEFAULT_EFFICIENCY_SRC = ("default (not fitted): docs/calibration.md 'chips not fitted' — 0.5 of "
                          "peak FLOP/s, 0.67 of peak HBM bandwidth")

_A100_SRC = ("[V] NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4) as quoted by "
             "glennklockwood.com/garden/processors/A100: BF16 312 TFLOP/s dense, no FP8")
_A100_LINK = ("[2] glennklockwood.com A100: NVLink 300 + 300 GB/s per GPU (600 GB/s total, "
              "NVSwitch in HGX/DGX A100)")


def a100(name: str, memory_bytes: float, bandwidth: float, nic_gbps: float, nic_src: str,
         price: float, price_src: str) -> HardwareProfile:
    """An A100 SXM4 GPU (one chip; 8 per HGX/DGX host), efficiencies at the unfitted defaults."""
    return HardwareProfile(
        name=name, peak_flops_bf16=312e12, peak_flops_fp8=None, memory_bytes=memory_bytes,
        memory_bandwidth_bytes_per_s=bandwidth, interconnect_bytes_per_s=600e9,
        intra_host_bytes_per_s=300e9, intra_host_latency_s=5e-6, power_w=400.0,
        price_per_hour_usd=price, chips_per_host=8, host_nic_bytes_per_s=nic_gbps * GBPS,
        tp_layer_latency_s=15e-6, step_overhead_s=0.5e-3, layer_overhead_s=60.5e-6,
        **DEFAULT_EFFICIENCY,
        sources={
            "compute/memory/power": _A100_SRC, "interconnect_bytes_per_s": _A100_LINK,
            "intra_host_bytes_per_s": "derived: 600 GB/s NVLink total / 2 = 300 GB/s one way "
            "(a KV copy uses one direction); " + _A100_LINK,
            "intra_host_latency_s": "assumption: 5 us per NVLink copy (launch and first byte; "
            "no published figure)",
            "host_nic": nic_src, "price_per_hour_usd": price_src,
            "compute_efficiency": DEFAULT_EFFICIENCY_SRC,
            "memory_efficiency": DEFAULT_EFFICIENCY_SRC,
            "step_overhead_s/tp_layer_latency_s/layer_overhead_s": "assumption: the H100's "
            "values (same serving stack, not fitted on A100)",
        },
    )


def literature_hardware() -> list[HardwareProfile]:
    """A100-80GB and A100-40GB."""
    return [
        a100("a100-80gb", 80e9, 2.039e12, 400.0,
             "[V] AWS EC2 p4de.24xlarge: 8 x A100 80 GB, 400 Gbps EFA (not in the reference "
             "file; check)", 40.97 / 8,
             "[V] AWS EC2 on-demand p4de.24xlarge $40.97/h / 8 GPUs (not in the reference "
             "file; check the pricing page)"),
        a100("a100-40gb", 40e9, 1.555e12, 400.0,
             "[V] AWS EC2 p4d.24xlarge: 8 x A100 40 GB, 400 Gbps EFA (not in the reference "
             "file; check)", 32.77 / 8,
             "[V] AWS EC2 on-demand p4d.24xlarge $32.77/h / 8 GPUs (not in the reference "
             "file; check the pricing page)"),
    ]


def _hf(repo: str) -> str:
    return f"[V] huggingface.co/{repo} config.json"


def _dense(name: str, params: float, layers: int, hidden: int, q: int, kv: int, ffn: int,
           vocab: int, context: int, src: str, params_src: str) -> ModelSpec:
    return ModelSpec(
        name=name, layers=layers, hidden_size=hidden, q_heads=q, kv_heads=kv,
        head_dim=hidden // q, ffn_size=ffn, vocab=vocab, total_params=params,
        active_params=params, max_context_tokens=context,
        sources={"shape": src, "total_params": params_src,
                 "max_context_tokens": f"{src}: max_position_embeddings / seq_length",
                 "weight_bytes_per_param": "FP16/BF16 weights as the studies served them"},
    )


_OPT = "Zhang et al. 2022, OPT (arXiv 2205.01068) Table 1"
_LLAMA2 = "Touvron et al. 2023, Llama 2 (arXiv 2307.09288)"


def literature_models() -> list[ModelSpec]:
    """OPT-13B/66B/175B, Llama-2-7B/13B/70B, BLOOM-176B, Qwen3-235B-A22B, Llama-4-Maverick."""
    return [
        _dense("opt-13b", 12.85e9, 40, 5_120, 40, 40, 20_480, 50_272, 2_048,
               _hf("facebook/opt-13b"), f"[V] {_OPT}: 13B (12.85B counted from the shape)"),
        _dense("opt-66b", 65.7e9, 64, 9_216, 72, 72, 36_864, 50_272, 2_048,
               _hf("facebook/opt-66b"), f"[V] {_OPT}: 66B"),
        _dense("opt-175b", 175e9, 96, 12_288, 96, 96, 49_152, 50_272, 2_048,
               f"[V] {_OPT} (weights by request; facebook/opt-66b config layout)",
               f"[V] {_OPT}: 175B"),
        _dense("llama-2-7b", 6.74e9, 32, 4_096, 32, 32, 11_008, 32_000, 4_096,
               _hf("meta-llama/Llama-2-7b-hf"), f"[V] {_LLAMA2}: 7B (6.74B)"),
        _dense("llama-2-13b", 13.02e9, 40, 5_120, 40, 40, 13_824, 32_000, 4_096,
               _hf("meta-llama/Llama-2-13b-hf"), f"[V] {_LLAMA2}: 13B (13.02B)"),
        _dense("llama-2-70b", 68.98e9, 80, 8_192, 64, 8, 28_672, 32_000, 4_096,
               _hf("meta-llama/Llama-2-70b-hf"), f"[V] {_LLAMA2}: 70B (68.98B)"),
        _dense("bloom-176b", 176.25e9, 70, 14_336, 112, 112, 57_344, 250_880, 2_048,
               _hf("bigscience/bloom") + " (n_layer 70, n_embed 14336, n_head 112; ALiBi, "
               "trained at seq_length 2048)",
               "[V] BigScience 2022, BLOOM (arXiv 2211.05100): 176,247M"),
        ModelSpec(
            name="qwen3-235b-a22b", layers=94, hidden_size=4_096, q_heads=64, kv_heads=4,
            head_dim=128, ffn_size=1_536, vocab=151_936, experts=128, experts_per_token=8,
            total_params=235e9, active_params=22e9, max_context_tokens=32_768,
            sources={"shape": _hf("Qwen/Qwen3-235B-A22B") + " (moe_intermediate_size 1536, "
                     "128 experts, top-8)",
                     "total_params/active_params": "[V] Qwen3 technical report: 235B / 22B",
                     "max_context_tokens": "[V] Qwen3-235B-A22B model card (32,768 native; "
                     "131,072 only with YaRN scaling)"},
        ),
        ModelSpec(
            name="llama-4-maverick", layers=48, hidden_size=5_120, q_heads=40, kv_heads=8,
            head_dim=128, ffn_size=8_192, vocab=202_048, experts=64, experts_per_token=1,
            total_params=400e9, active_params=17e9, max_context_tokens=1_048_576,
            sources={
                "shape": _hf("meta-llama/Llama-4-Maverick-17B-128E") + " (text_config: 48 "
                "layers, 128 routed experts top-1 plus a shared expert on every other layer, "
                "intermediate_size 8192)",
                "experts": "derived: 128 experts on 24 of 48 layers averaged over all layers "
                "(64 per layer), so layers x experts x expert size = the routed weights (one "
                "expert count per layer is what the spec holds)",
                "total_params/active_params": "[V] Meta Llama 4 model card: 400B total, 17B "
                "active",
                "max_context_tokens": "[V] Llama 4 model card: 1M context (Maverick)"},
        ),
    ]

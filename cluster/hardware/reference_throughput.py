"""GPU throughput figures: MLPerf Inference v5.0 (tokens/s under latency limits) and
TensorRT-LLM's maximum-throughput tables (offline), copied from
``shared/reference/calibration.md`` with each row's configuration.

Every figure here is a prediction (``kind = "predict"``): the H100 constants are fitted to NIM
1.8.0 only, and nothing is fitted to a throughput table. What a row does not publish (or what
was not read from its source) is an assumption named in the row's ``note``; a row the models
cannot express (FP4 weights: the catalog knows BF16/FP16/FP8 only) stays, flagged
(``comparable = False``), outside the MAPE.

MLPerf (``scenario = "capacity"``): ``units`` servers of ``chips`` GPUs (TP) each, open-loop
Poisson arrivals; the metric is the output tokens/s sustained while p99 TTFT and p99 TPOT stay
within the scenario's limits (mlcommons/inference ``loadgen/mlperf.conf``). TensorRT-LLM
(``scenario = "closed_loop"``, ``batch`` = the requests queued at once): ``trtllm-bench
throughput`` queues every request of a synthetic fixed-length dataset at once; the metric is the
total output tokens/s.
"""

from __future__ import annotations

from functools import partial

from disagg.cluster.hardware.reference import Figure

MLPERF = ("[V] mlcommons/inference_results_v5.0 closed/NVIDIA results/*/llama2-70b-99.9 "
          "mlperf_log_summary.txt; limits from mlcommons/inference loadgen/mlperf.conf")
TRTLLM = "[V] NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md (v1.0 era)"
# What the MLPerf rows assume (the system descriptions and the dataset were not read):
# FP8 weights and KV cache for the H100 row are read in a third-party reading of NVIDIA's v5.0
# DGX-H100 system and config files ([2]: TensorRT 10.8, FP8, FP8 KV, GPU batch 1,024, Server
# 31,106.28 tok/s at 106.21 samples/s - a mean output of 293 tokens, derived).
MLPERF_ASSUMED = ("assumed: FP8 weights and KV (read for H100 [2], assumed for H200), no "
                  "speculative decoding, OpenOrca lengths as lognormals (median 600 / 250, "
                  "capped at 1,024: mean ~700 / ~300; the output mean 293 is derived from the "
                  "H100 log, the prompt lengths were not read)")
# Mean prompt / output tokens of the assumed length distributions (derived: lognormal mean
# median x exp(sigma^2 / 2) with sigma 0.7, less the cap's trim) - the experiment file
# experiments/accuracy/mlperf_llama2_70b.toml holds the distributions themselves.
MLPERF_PROMPT, MLPERF_OUTPUT = 700, 300
SERVER_MS = (2_000.0, 200.0)  # Llama-2-70B Server: p99 TTFT / p99 TPOT limits
INTERACTIVE_MS = (450.0, 40.0)  # Llama-2-70B Interactive


def _mlperf() -> list[Figure]:
    row = partial(Figure, model="llama-2-70b", weight_dtype="fp8", kv_dtype="fp8",
                  scenario="capacity", metric="capacity_tok_s", kind="predict", source=MLPERF,
                  prompt=MLPERF_PROMPT, output=MLPERF_OUTPUT,
                  generation="MLPerf v5.0 closed, NVIDIA TensorRT-LLM", date="2025-04")
    server = partial(row, ttft_limit_ms=SERVER_MS[0], tpot_limit_ms=SERVER_MS[1])
    inter = partial(row, ttft_limit_ms=INTERACTIVE_MS[0], tpot_limit_ms=INTERACTIVE_MS[1])
    fp4 = ("FP4 weights in NVIDIA's Blackwell submission: the catalog has no FP4 (FP8 "
           "emulated here for the table only); flagged, outside the MAPE")
    return [
        server(key="mlperf-h100-server", hardware="h100", chips=2, units=4, published=31_106,
               note=f"{MLPERF_ASSUMED}; TP2 x 4 assumed (80 GB leaves too little KV "
               "at TP1)"),
        server(key="mlperf-h200-server", hardware="h200", chips=1, units=8, published=33_071,
               note=f"{MLPERF_ASSUMED}; TP1 x 8 assumed"),
        inter(key="mlperf-h200-interactive", hardware="h200", chips=1, units=8,
              published=19_424, note=f"{MLPERF_ASSUMED}; TP1 x 8 assumed"),
        server(key="mlperf-b200-server", hardware="b200", chips=1, units=8, published=98_443,
               comparable=False, note=fp4),
        inter(key="mlperf-b200-interactive", hardware="b200", chips=1, units=8,
              published=59_409, comparable=False, note=fp4),
    ]


def _trtllm() -> list[Figure]:
    row = partial(Figure, weight_dtype="fp8", kv_dtype="fp8", scenario="closed_loop",
                  metric="total_tok_s", kind="predict", generation="TensorRT-LLM v1.0 "
                  "(PyTorch backend, trtllm-bench)", date="2025",
                  note="offline: every request queued at once; FP8 KV assumed (ModelOpt FP8 "
                  "checkpoints)")
    k1 = partial(row, prompt=1_000, output=1_000, batch=3_000)  # 3,000 requests (the doc)
    return [
        k1(key="trtllm-70b-h100", model="llama-3.1-70b", hardware="h100", chips=2,
           published=4_205, source=f"{TRTLLM}, Llama-3.3-70B H100 TP2 FP8 1000/1000"),
        k1(key="trtllm-70b-h200", model="llama-3.1-70b", hardware="h200", chips=1,
           published=2_909, source=f"{TRTLLM}, Llama-3.3-70B H200 TP1 FP8 1000/1000"),
        row(key="trtllm-70b-h100-5k", model="llama-3.1-70b", hardware="h100", chips=2,
            prompt=5_000, output=500, batch=1_500, published=898,
            source=f"{TRTLLM}, Llama-3.3-70B H100 TP2 FP8 5000/500"),
        k1(key="trtllm-8b-h100", model="llama-3.1-8b", hardware="h100", chips=1,
           published=15_220, source=f"{TRTLLM}, Llama-3.1-8B H100 TP1 FP8 1000/1000"),
        k1(key="trtllm-405b-h100", model="llama-3.1-405b", hardware="h100", chips=8,
           published=2_919, source=f"{TRTLLM}, Llama-3.1-405B H100 TP8 FP8 1000/1000"),
        k1(key="trtllm-70b-b200", model="llama-3.1-70b", hardware="b200", chips=1,
           published=7_007, source=f"{TRTLLM}, Llama-3.3-70B B200 TP1 FP4 1000/1000",
           comparable=False, note="FP4 weights: the catalog has no FP4 (FP8 emulated for the "
           "table only); flagged, outside the MAPE"),
    ]


def throughput_figures() -> list[Figure]:
    """The MLPerf v5.0 Llama-2-70B rows, then the TensorRT-LLM maximum-throughput rows."""
    return _mlperf() + _trtllm()

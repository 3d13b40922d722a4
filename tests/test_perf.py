"""Performance models against hand-computed values."""

from __future__ import annotations

import math

import pytest

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import (
    decode_step_time,
    expected_experts,
    fit_check,
    kv_bytes,
    peak_flops,
    weights_read_bytes,
)
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.specs import ModelSpec


@pytest.mark.parametrize("name, per_token", [
    ("llama-3.1-8b", 131_072), ("llama-3.1-70b", 327_680), ("llama-3.1-405b", 516_096),
    ("qwen3-32b", 262_144),
])
def test_kv_bytes_per_token_bf16(name: str, per_token: int) -> None:
    assert kv_bytes(1, get_model(name)) == per_token
    assert kv_bytes(1000, get_model(name)) == 1000 * per_token


def test_gpt_oss_sliding_window_layers_stop_growing() -> None:
    m = get_model("gpt-oss-120b")
    # 18 full-attention layers x 2 x 8 KV heads x 64 dims x 2 bytes = 36,864 B per token
    assert kv_bytes(1001, m) - kv_bytes(1000, m) == 36_864
    assert kv_bytes(100, m) - kv_bytes(99, m) == 2 * 36_864  # inside the 128-token window


def test_fp8_kv_halves_bytes() -> None:
    m = get_model("llama-3.1-70b").model_copy(update={"kv_bytes_per_element": 1.0})
    assert kv_bytes(1, m) == 163_840


def test_prefill_time_trainium2_by_hand() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("trainium2")
    s, n = 1000, 4
    flops = 2 * 70.55e9 * s + 2 * 80 * 64 * 128 * s * s
    compute = flops / (n * 667e12 * hw.compute_efficiency)
    memory = (70.55e9 * 2 + 327_680 * s) / (n * 2.9e12 * hw.memory_efficiency)
    # per layer: latency x log2(4) + two ring all-reduces of 1000 x 8192 BF16 activations
    comm = 80 * (hw.tp_layer_latency_s * 2 + 4 * 3 / 4 * s * 8192 * 2 / 1.28e12)
    t = prefill_time([s], m, hw, n)
    assert t.bound == "compute"
    assert t.seconds == pytest.approx(max(compute, memory) + comm + hw.step_overhead_s, rel=1e-12)


def test_prefill_batch_sums_flops() -> None:
    m, hw = get_model("llama-3.1-8b"), get_hardware("h100")
    one = prefill_time([500], m, hw, 1).compute_s
    assert prefill_time([500, 500], m, hw, 1).compute_s == pytest.approx(2 * one)


def test_prefill_rejects_empty_batch() -> None:
    with pytest.raises(ValueError):
        prefill_time([], get_model("llama-3.1-8b"), get_hardware("h100"), 1)


def test_h100_decode_by_hand() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("h100")
    ctx, n = 1000, 8
    memory = (70.55e9 * 2 + 327_680 * ctx) / (n * 3.35e12 * hw.memory_efficiency)
    fixed = hw.step_overhead_s + 80 * (hw.layer_overhead_s + hw.tp_layer_latency_s * 3)  # log2 8
    ring = 80 * 4 * 7 / 8 * 1 * 8192 * 2 / 900e9
    assert decode_step_time(1, ctx, m, hw, n) == pytest.approx(memory + fixed + ring, rel=1e-12)


def test_one_chip_has_no_tensor_parallel_cost() -> None:
    m, hw = get_model("llama-3.1-8b"), get_hardware("h100")
    memory = (8.03e9 * 2 + 131_072 * 500) / (3.35e12 * hw.memory_efficiency)
    fixed = hw.step_overhead_s + 32 * hw.layer_overhead_s  # launches, no collectives
    assert decode_step_time(1, 500, m, hw, 1) == pytest.approx(memory + fixed, rel=1e-12)


def test_roofline_concurrency_exponent_scales_the_fixed_part() -> None:
    m = get_model("llama-3.1-70b")
    hw = get_hardware("trainium2").model_copy(update={"concurrency_exponent": 1.0})
    flat = get_hardware("trainium2")
    fixed = flat.step_overhead_s + 80 * (flat.layer_overhead_s + flat.tp_layer_latency_s * 4)
    # the fixed part of a 4-stream step counts 4 times; the roofline and ring parts do not change
    extra = decode_step_time(4, 4000, m, hw, 16) - decode_step_time(4, 4000, m, flat, 16)
    assert extra == pytest.approx(3 * fixed, rel=1e-9)


def test_cs3_single_stream_is_the_pipeline_latency() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("cs3")
    layer_gparams = (70.55e9 - 2 * 128_256 * 8192) / 80 / 1e9  # embeddings excluded
    # 80 layers on 4 wafers: each gets 1/20 of its wafer's 125 PFLOP/s x the efficiency
    share = 125e15 * hw.pipeline_compute_efficiency / 20
    layer = (hw.layer_latency_s + hw.layer_latency_s_per_gparam * layer_gparams
             + 2 * layer_gparams * 1e9 / share)
    floor = hw.token_latency_s + 80 * layer + 3 * 5e-6
    assert decode_step_time(1, 1000, m, hw, 4) == pytest.approx(floor, rel=1e-12)


def test_cs3_concurrency_share_follows_the_exponent() -> None:
    m = get_model("llama-3.1-70b")
    hw = get_hardware("cs3").model_copy(update={"concurrency_exponent": 0.5,
                                                "concurrency_free_streams": 1.0})
    one = decode_step_time(1, 1000, m, hw, 4)
    assert decode_step_time(16, 16_000, m, hw, 4) == pytest.approx(4 * one, rel=1e-12)
    shared = hw.model_copy(update={"concurrency_exponent": 1.0, "concurrency_free_streams": 4.0})
    assert decode_step_time(4, 4000, m, shared, 4) == pytest.approx(one, rel=1e-12)
    assert decode_step_time(16, 16_000, m, shared, 4) == pytest.approx(4 * one, rel=1e-12)


def test_cs3_flat_curve_becomes_compute_bound() -> None:
    m = get_model("llama-3.1-70b")
    hw = get_hardware("cs3").model_copy(update={"concurrency_exponent": 0.0})
    floor = decode_step_time(1, 1000, m, hw, 4)
    big = decode_step_time(4000, 4000 * 1000, m, hw, 4)
    flops = 2 * 70.55e9 * 4000 + 4 * 80 * 64 * 128 * 4000 * 1000
    assert big == pytest.approx(max(floor, flops / (4 * 125e15 * hw.compute_efficiency)),
                                rel=1e-12)
    assert big > floor


def test_moe_reads_the_experts_a_batch_activates() -> None:
    m = get_model("gpt-oss-120b")
    assert expected_experts(1, m) == pytest.approx(4.0)  # one token: its top-4
    assert expected_experts(10_000, m) == pytest.approx(128.0)  # all of them
    expert = 3 * 2880 * 2880
    shared = 116.8e9 - 36 * 128 * expert
    assert weights_read_bytes(1, m) == pytest.approx((shared + 36 * 4 * expert) * 2)
    two = 128 * (1 - (1 - 4 / 128) ** 2)  # 7.875 distinct experts for two tokens
    assert weights_read_bytes(2, m) == pytest.approx((shared + 36 * two * expert) * 2)
    assert weights_read_bytes(10_000, m) == pytest.approx(116.8e9 * 2)
    dense = get_model("llama-3.1-70b")
    assert weights_read_bytes(1, dense) == weights_read_bytes(64, dense) == 70.55e9 * 2


def test_weight_and_kv_dtype_set_bytes_and_peak() -> None:
    m = ModelSpec.model_validate({**get_model("llama-3.1-70b").model_dump(),
                                  "weight_dtype": "fp8", "kv_dtype": "fp8"})
    assert m.weight_bytes_per_param == 1.0 and m.kv_bytes_per_element == 1.0
    assert kv_bytes(1, m) == 163_840
    assert peak_flops(get_hardware("h100"), m) == 1_979e12


def test_fit_check() -> None:
    m = get_model("llama-3.1-70b")
    assert not fit_check(m, get_hardware("trainium2"), 1).fits  # 141 GB of weights > 96 GiB
    fit = fit_check(m, get_hardware("trainium2"), 2, kv_tokens=10_000)
    assert fit.fits
    assert fit.kv_capacity_bytes == pytest.approx(2 * 96 * 2**30 - 70.55e9 * 2)
    assert math.isclose(fit.kv_bytes, 327_680 * 10_000)


def test_cs3_streams_are_bounded_by_the_sram_left_after_weights() -> None:
    fit = fit_check(get_model("llama-3.1-70b"), get_hardware("cs3"), 4)
    assert fit.kv_capacity_bytes == pytest.approx(4 * 44e9 - 70.55e9 * 2)  # 34.9 GB
    assert fit.kv_capacity_bytes // (327_680 * 2000) == 53  # streams of 2,000 tokens

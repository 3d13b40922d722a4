"""Performance models against hand-computed values."""

from __future__ import annotations

import math

import pytest

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import (
    decode_step_time,
    fit_check,
    kv_bytes,
    prefill_time,
)


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


def test_prefill_time_trainium2_is_compute_bound_by_hand() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("trainium2")
    s = 1000
    flops = 2 * 70.55e9 * s + 2 * 80 * 64 * 128 * s * s
    expected = flops / (4 * 667e12 * 0.5)
    t = prefill_time([s], m, hw, 4)
    assert t.bound == "compute"
    assert t.seconds == pytest.approx(expected, rel=1e-12)


def test_prefill_batch_sums_flops() -> None:
    m, hw = get_model("llama-3.1-8b"), get_hardware("h100")
    one = prefill_time([500], m, hw, 1).compute_s
    assert prefill_time([500, 500], m, hw, 1).compute_s == pytest.approx(2 * one)


def test_prefill_rejects_empty_batch() -> None:
    with pytest.raises(ValueError):
        prefill_time([], get_model("llama-3.1-8b"), get_hardware("h100"), 1)


def test_h100_decode_is_memory_bound_by_hand() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("h100")
    ctx = 1000
    moved = 70.55e9 * 2 + 327_680 * ctx
    expected = moved / (8 * 3.35e12 * 0.67)
    assert decode_step_time(1, ctx, m, hw, 8) == pytest.approx(expected, rel=1e-12)
    # ~128 tok/s per user, the published figure the efficiency came from
    assert 1 / expected == pytest.approx(128, rel=0.02)


def test_cs3_fit_reproduces_published_70b_speed() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("cs3")
    assert 1 / decode_step_time(1, 1000, m, hw, 4) == pytest.approx(2100, rel=1e-9)
    expected_layer = (1 / 2100 - 3 * 5e-6) / 80
    assert hw.layer_latency_s == pytest.approx(expected_layer, rel=1e-12)


def test_cs3_large_batch_becomes_compute_bound() -> None:
    m, hw = get_model("llama-3.1-70b"), get_hardware("cs3")
    floor = decode_step_time(1, 1000, m, hw, 4)
    big = decode_step_time(4000, 4000 * 1000, m, hw, 4)
    flops = 2 * 70.55e9 * 4000 + 4 * 80 * 64 * 128 * 4000 * 1000
    assert big == pytest.approx(max(floor, flops / (4 * 125e15 * 0.5)), rel=1e-12)
    assert big > floor


def test_fit_check() -> None:
    m = get_model("llama-3.1-70b")
    assert not fit_check(m, get_hardware("trainium2"), 1).fits  # 141 GB of weights > 96 GiB
    fit = fit_check(m, get_hardware("trainium2"), 2, kv_tokens=10_000)
    assert fit.fits
    assert fit.kv_capacity_bytes == pytest.approx(2 * 96 * 2**30 - 70.55e9 * 2)
    assert math.isclose(fit.kv_bytes, 327_680 * 10_000)

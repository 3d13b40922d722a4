"""The CS-3 decode model tells model sizes apart because the plain data say so: Cerebras' launch
software (2024-08, plain decoding) ran Llama 3.1 8B at 1,800 tok/s on one wafer and Llama 3.1 70B
(8.8x the parameters) at 450 tok/s on four. Those two figures are the CS-3 fit set; the later,
speculative or method-unknown figures (2,100 / 2,200 / 2,314 tok/s) are not (docs/calibration.md)."""

from __future__ import annotations

import pytest

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.fit import fit_set
from disagg.cluster.hardware.perf import decode_step_time


def _user_tok_s(model: str, wafers: int) -> float:
    return 1 / decode_step_time(1, 1_000, get_model(model), get_hardware("cs3"), wafers)


def test_the_cs3_fit_set_is_the_two_plain_launch_figures() -> None:
    assert sorted((f.model, f.published) for f in fit_set("cs3")) == [
        ("llama-3.1-70b", 450.0), ("llama-3.1-8b", 1_800.0)]


def test_an_8b_and_a_ten_times_larger_model_do_not_decode_at_the_same_speed() -> None:
    small, large = _user_tok_s("llama-3.1-8b", 1), _user_tok_s("llama-3.1-70b", 4)
    # the data: 1,800 / 450 = 4x; the model reproduces it within the fit's 1 % residuals
    assert small / large == pytest.approx(1_800 / 450, rel=0.02)


def test_a_larger_model_on_the_same_pipeline_is_slower() -> None:
    # per-layer latency grows with the layer's parameters: 405B (126 layers of ~3.2 B) on 20
    # wafers (811 GB of 16-bit weights / 44 GB each) is slower than the 70B (80 layers of
    # ~0.86 B) on 4 — the fit's per-Gparam term
    assert get_hardware("cs3").layer_latency_s_per_gparam > 0
    assert _user_tok_s("llama-3.1-405b", 20) < 0.5 * _user_tok_s("llama-3.1-70b", 4)

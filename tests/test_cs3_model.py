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


def test_a_larger_model_on_more_wafers_is_slower() -> None:
    # a layer's time is its FLOPs over its share of the wafer: 405B (126 layers of ~3.2 B) on 20
    # wafers (811 GB of 16-bit weights / 44 GB each, 6.3 layers per wafer) against the 70B (80
    # layers of ~0.86 B, 20 per wafer) on 4: by hand, compute 126 x 6.3 x 6.4e9 = 5.1e12 vs
    # 80 x 20 x 1.7e9 = 2.7e12 FLOP-per-share units, so ~1.9x the 70B's compute time
    hw = get_hardware("cs3")
    assert hw.pipeline_compute_efficiency > 0
    big, small = _user_tok_s("llama-3.1-405b", 20), _user_tok_s("llama-3.1-70b", 4)
    assert 0.4 * small < big < 0.75 * small


def test_more_wafers_speed_up_a_layer_bound_model() -> None:
    # the same 70B on 8 wafers: each layer gets twice the compute, minus 4 more hops
    assert _user_tok_s("llama-3.1-70b", 8) > 1.3 * _user_tok_s("llama-3.1-70b", 4)

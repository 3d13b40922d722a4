"""Fused speculation (NxD Inference: draft and target in one compiled graph) and the
Trainium2 vLLM-neuron profile (one fitted constant on top of the chip's)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from disagg.cluster.hardware.calibration import draft_model
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time
from disagg.cluster.hardware.speculative import Speculation, spec_step_times
from disagg.cluster.serving_config import SpeculativeConfig


def test_fused_draft_steps_skip_the_per_step_host_overhead() -> None:
    hw, model, draft = get_hardware("trainium2"), get_model("llama-3.1-70b"), draft_model(
        "llama-3.2-1b")
    plain = Speculation("draft_model", 7, 0.7, draft=draft, draft_hw=hw, draft_chips=16)
    fused = Speculation("draft_model", 7, 0.7, draft=draft, draft_hw=hw, draft_chips=16,
                        fused=True)
    # by hand: verify (the target's step over 8 query tokens) + 7 draft steps; fused, each
    # draft step is the draft's plain step less the host overhead, paid once in the verify
    draft_step = decode_step_time(1, 11_000, draft, hw, 16)
    verify = float(spec_step_times(1, 11_000, plain, model, hw, 16)) - 7 * draft_step
    expected = verify + 7 * (draft_step - hw.step_overhead_s)
    assert float(spec_step_times(1, 11_000, fused, model, hw, 16)) == pytest.approx(expected)
    assert hw.step_overhead_s > 0


def test_fused_needs_a_draft_model() -> None:
    with pytest.raises(ValidationError, match="fused applies to method draft_model"):
        SpeculativeConfig(method="draft_heads", num_speculative_tokens=4, acceptance_rate=0.7,
                          fused=True)


def test_the_vllm_neuron_profile_is_trainium2_but_its_step_overhead() -> None:
    chip, stack = get_hardware("trainium2"), get_hardware("trainium2-vllm-neuron")
    differ = {k for k, v in chip.model_dump().items() if stack.model_dump()[k] != v}
    assert differ == {"name", "step_overhead_s", "sources"}
    assert "fitted" in stack.sources["step_overhead_s"]

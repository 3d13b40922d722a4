"""Speculative decoding and paged-KV preemption end to end on the ray engine (shared Ray
fixture); the results invariants (conftest's autouse check) hold, as on the virtual engine."""

from __future__ import annotations

import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.hardware.catalog import get_model
from disagg.cluster.hardware.perf import kv_bytes
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray

L8B = get_model("llama-3.1-8b")


def _raw(engine: str) -> dict:
    """Ten requests (300-token prompts, 400 output tokens) at 20/s; the decode H100's KV holds
    100 blocks of 16 tokens while each request ends needing 44: several run at once (each
    decodes for over a second of emu time) and their growing KV must preempt some, whatever
    the machine's load. Decoding is speculative (draft heads, gamma 3, alpha 0.7)."""
    gpu = {"hardware": "h100", "chips_per_unit": 1, "units": 1}
    block = float(kv_bytes(16, L8B))
    decode = {**gpu, "hardware": {"name": "h100", "memory_bytes": L8B.weight_bytes + 100.5 * block},
              "speculative": {"method": "draft_heads", "num_speculative_tokens": 3,
                              "acceptance_rate": 0.7}}
    return experiment_dict(
        model="llama-3.1-8b", prefill=gpu, decode=decode, experiment__engine=engine,
        experiment__dilation=2.0 if engine == "ray" else 1.0, experiment__duration_s=0.5,
        workload__arrivals={"kind": "constant"}, workload__rate_per_s=20.0,
        workload__prompt_tokens={"kind": "fixed", "value": 300},
        workload__output_tokens={"kind": "fixed", "value": 400})


def test_speculation_and_preemption_run_on_ray(ray_cluster, tmp_path) -> None:
    real = run_experiment(experiment_from_dict(_raw("ray")), tmp_path / "ray").summary
    ref = run_experiment(experiment_from_dict(_raw("virtual"))).summary
    assert real["submitted"] == ref["submitted"] == 10
    assert real["completed"] == ref["completed"] == 10
    assert real["total_output_tokens"] == ref["total_output_tokens"] == 4000
    assert ref["preemptions"] > 0 and real["preemptions"] > 0

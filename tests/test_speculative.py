"""Speculative decoding: the truncated-geometric tokens per step, the step's cost, and the
speed-up a long single request measures on the virtual engine against the closed form."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import experiment_dict, make_request

from disagg.actors.components.spec_steps import SpecStepper
from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time, decode_step_times
from disagg.cluster.hardware.speculative import (
    Speculation,
    draw_tokens_per_step,
    expected_tokens_per_step,
    spec_step_times,
)
from disagg.experiments.run import run_experiment

H100 = get_hardware("h100")
L8B, L70B = get_model("llama-3.1-8b"), get_model("llama-3.1-70b")
HEADS = Speculation("draft_heads", 4, 0.8)


def test_expected_tokens_closed_form_by_hand() -> None:
    # alpha 0.8, gamma 4: 1 + 0.8 + 0.64 + 0.512 + 0.4096 = 3.3616
    assert expected_tokens_per_step(0.8, 4) == pytest.approx(3.3616, rel=1e-12)
    assert expected_tokens_per_step(0.0, 4) == 1.0
    assert expected_tokens_per_step(1.0, 4) == 5.0


def test_draws_follow_the_truncated_geometric_law() -> None:
    """P(tokens = a + 1) = 0.8^a x 0.2 for a < 4, P(5) = 0.8^4. 200,000 draws: each frequency's
    standard error is <= sqrt(0.25 / 200,000) = 0.0011, so 0.006 is over 5 sigma."""
    draws = draw_tokens_per_step(np.random.default_rng(1), 0.8, 4, 200_000)
    freq = np.bincount(draws, minlength=6)[1:] / len(draws)
    assert freq == pytest.approx([0.2, 0.16, 0.128, 0.1024, 0.4096], abs=0.006)
    assert draws.min() == 1 and draws.max() == 5
    assert np.all(draw_tokens_per_step(np.random.default_rng(1), 0.0, 4, 50) == 1)
    assert np.all(draw_tokens_per_step(np.random.default_rng(1), 1.0, 4, 50) == 5)


def test_verify_is_free_when_memory_bound_and_costs_more_with_batch() -> None:
    """Llama-8B on one H100 at batch 1 reads 16 GB of weights (~7 ms) and computes 5 x 16 GFLOP
    (~0.1 ms): verifying 5 tokens costs exactly a plain step. At batch 256 the step is compute
    bound and the verify of 5 tokens per sequence costs much more than a plain step."""
    one = float(decode_step_times(1, 1000, L8B, H100, 1, query_tokens=5)[()])
    assert one == pytest.approx(decode_step_time(1, 1000, L8B, H100, 1), rel=1e-12)
    plain = decode_step_time(256, 256_000, L8B, H100, 1)
    verify = float(decode_step_times(256, 256_000, L8B, H100, 1, query_tokens=5)[()])
    assert verify > 2.0 * plain
    heads = float(spec_step_times(1, 1000, HEADS, L8B, H100, 1)[()])
    assert heads == pytest.approx(one * (1 + 4 * 0.05), rel=1e-12)


def test_a_request_s_draws_do_not_depend_on_its_batch_or_plan_cuts() -> None:
    r1, r2 = make_request(request_id=1), make_request(request_id=2)
    alone = SpecStepper(HEADS, L8B, H100, 1, np.random.default_rng(3))
    shared = SpecStepper(HEADS, L8B, H100, 1, np.random.default_rng(3))
    a = alone.plan([r1], [1000], 0).gained[:, 0]
    b = shared.plan([r2, r1], [1000, 1000], 0).gained
    n = min(len(a), len(b))
    assert np.array_equal(a[:n], b[:n, 1])
    shared.commit([r2, r1], 2)  # two steps ran; the rest of the draws are kept
    assert np.array_equal(shared.plan([r1], [1000], 0).gained[: n - 2, 0], a[2:n])


def _single(speculative: dict | None, output: int) -> dict:
    gpu = {"hardware": "h100", "chips_per_unit": 1, "units": 1}
    decode = dict(gpu) if speculative is None else {**gpu, "speculative": speculative}
    exp = experiment_from_dict(experiment_dict(
        model="llama-3.1-8b", prefill=gpu, decode=decode, experiment__duration_s=1.5,
        workload__arrivals={"kind": "constant"}, workload__rate_per_s=1.0,
        workload__prompt_tokens={"kind": "fixed", "value": 100},
        workload__output_tokens={"kind": "fixed", "value": output}))
    result = run_experiment(exp)
    [row] = result.tables["requests"].to_pylist()
    assert row["status"] == "completed"
    return {"row": row, "summary": result.summary}


def test_speed_up_of_a_long_single_request_matches_the_closed_form() -> None:
    """alpha 0.8, gamma 4, draft heads at 0.05 of a step: a step yields 3.3616 tokens on average
    and costs (1 + 4 x 0.05) = 1.2 plain steps (batch 1 is memory bound: the verify of 5 tokens
    costs one plain step, test above), so decoding is 3.3616 / 1.2 = 2.801 x faster. 4,000
    tokens take ~1,190 steps; the per-step tokens' standard deviation is ~1.5, so the mean's
    relative error is ~1.5 / 3.36 / sqrt(1190) = 1.3 %: 5 % is over 3.5 sigma."""
    spec = {"method": "draft_heads", "num_speculative_tokens": 4, "acceptance_rate": 0.8}
    plain, fast = _single(None, 4001)["row"], _single(spec, 4001)["row"]
    span = {k: r["last_token_s"] - r["decode_start_s"] for k, r in
            (("plain", plain), ("fast", fast))}
    assert span["plain"] / span["fast"] == pytest.approx(3.3616 / 1.2, rel=0.05)


def test_zero_acceptance_gives_one_token_per_step_at_verify_plus_draft_cost() -> None:
    """alpha 0 with a Llama-8B draft for Llama-8B on the same H100: every step yields exactly
    one token and costs a verify of 3 tokens plus 2 sequential draft steps, at the context the
    request holds (101 tokens after its first token, one more each step)."""
    spec = {"method": "draft_model", "draft_model": "llama-3.1-8b",
            "num_speculative_tokens": 2, "acceptance_rate": 0.0}
    row = _single(spec, 11)["row"]
    steps = [float(decode_step_times(1, 101 + i, L8B, H100, 1, query_tokens=3)[()])
             + 2 * decode_step_time(1, 101 + i, L8B, H100, 1) for i in range(10)]
    assert row["last_token_s"] == pytest.approx(row["decode_start_s"] + sum(steps), rel=1e-9)


def test_speculative_config_errors_name_the_field() -> None:
    raw = experiment_dict()
    raw["decode"]["speculative"] = {"method": "draft_model", "num_speculative_tokens": 3,
                                    "acceptance_rate": 0.7}
    with pytest.raises(ConfigError, match="draft_model"):
        experiment_from_dict(raw)
    raw["decode"]["speculative"] = {"method": "draft_heads", "num_speculative_tokens": 3,
                                    "acceptance_rate": 1.5}
    with pytest.raises(ConfigError, match="acceptance_rate"):
        experiment_from_dict(raw)

"""The colocated schedulers: vLLM v0's prefill-first iterations stall every running decode
(against a hand-computed timeline), and speculative decoding on a colocated unit."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_colocated import colocated_dict

from disagg.actors.components.colocated_steps import plan_prefill_first
from disagg.cluster.config import experiment_from_dict
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time, decode_step_times
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment
from disagg.policies.chunked_prefill import WaitingPrefill

H100 = get_hardware("h100")
LLAMA = get_model("llama-3.1-70b")
ROOT = Path(__file__).resolve().parents[1]


def test_v0_plans_whole_prompts_under_the_budget_and_never_chunks() -> None:
    queue = (WaitingPrefill(1, 3000, False, 1.0), WaitingPrefill(2, 3000, False, 1.0),
             WaitingPrefill(3, 9000, False, 1.0))
    assert plan_prefill_first(queue, 5, 8192, 256, 10.0).chunks == ((1, 3000), (2, 3000))
    # a prompt longer than the budget still runs whole when it is first
    assert plan_prefill_first(queue[2:], 0, 8192, 256, 10.0).chunks == ((3, 9000),)
    assert plan_prefill_first(queue, 256, 8192, 256, 10.0).chunks == ()  # max_running reached


def _rows(scheduler: str, **extra) -> dict[int, dict]:
    raw = colocated_dict(experiment__duration_s=0.25, workload__arrivals={"kind": "constant"},
                         workload__rate_per_s=10.0,
                         workload__prompt_tokens={"kind": "fixed", "value": 1000},
                         workload__output_tokens={"kind": "fixed", "value": 30})
    raw["colocated"].update(scheduler=scheduler, **extra)
    rows = run_experiment(experiment_from_dict(raw)).tables["requests"].to_pylist()
    return {r["request_id"]: r for r in rows}


def test_a_v0_prefill_iteration_stalls_the_running_decode() -> None:
    """A arrives at 0.1 s, B at 0.2 s (1,000-token prompts, 30 output tokens, Llama-70B on
    8 x H100). A prefills alone and decodes; B joins at A's first decode boundary at or after
    0.2 s, where v0 runs B's whole prefill alone (A stalls), then both decode together."""
    rows = _rows("vllm_v0")
    p = prefill_time([1000], LLAMA, H100, 8).seconds
    t = 0.1 + p  # A's first token
    assert rows[0]["first_token_s"] == pytest.approx(t, rel=1e-12)
    k = 0  # A's decode tokens before B's prefill
    while t < 0.2:
        t += decode_step_time(1, 1001 + k, LLAMA, H100, 8)
        k += 1
    first_b = t + p  # B's prefill-only iteration: A gains no token in it
    assert rows[1]["first_token_s"] == pytest.approx(first_b, rel=1e-12)
    last_a = first_b + sum(decode_step_time(2, 2002 + k + 2 * i, LLAMA, H100, 8)
                           for i in range(29 - k))
    assert rows[0]["last_token_s"] == pytest.approx(last_a, rel=1e-12)
    v1 = _rows("vllm_v1")  # v1 chunks B next to A's decode: A never waits a whole prefill
    assert v1[0]["last_token_s"] < rows[0]["last_token_s"]


def test_speculation_on_a_colocated_unit_steps_at_verify_plus_heads() -> None:
    """alpha 0 (one token per step), gamma 2, heads at 0.05: each decode step of the lone
    request costs a 3-token verify plus 2 x 0.05 plain steps."""
    spec = {"method": "draft_heads", "num_speculative_tokens": 2, "acceptance_rate": 0.0}
    raw = colocated_dict(experiment__duration_s=0.15, workload__arrivals={"kind": "constant"},
                         workload__rate_per_s=10.0,
                         workload__prompt_tokens={"kind": "fixed", "value": 1000},
                         workload__output_tokens={"kind": "fixed", "value": 10})
    raw["colocated"]["speculative"] = spec
    [row] = run_experiment(experiment_from_dict(raw)).tables["requests"].to_pylist()
    steps = [float(decode_step_times(1, 1001 + i, LLAMA, H100, 8, query_tokens=3)[()])
             + 0.1 * decode_step_time(1, 1001 + i, LLAMA, H100, 8) for i in range(9)]
    assert row["last_token_s"] == pytest.approx(row["first_token_s"] + sum(steps), rel=1e-12)


def test_the_opt13b_v0_a100_experiment_validates_and_runs(tmp_path: Path) -> None:
    path = ROOT / "experiments" / "opt13b_v0_a100.toml"
    assert main(["validate", str(path)]) == 0
    out = tmp_path / "opt13b_v0_a100"
    assert main(["run", str(path), "--engine", "virtual", "--out", str(out)]) == 0
    assert (out / "requests.parquet").exists()

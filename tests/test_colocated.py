"""Colocated units (prefill and decode on one GPU server, chunked prefill): the planner, the mixed
iteration model, exact timelines on the virtual engine, and the prefill-decode interference."""

from __future__ import annotations

import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.mixed import mixed_iteration_s
from disagg.cluster.hardware.perf import decode_step_time, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment
from disagg.policies.chunked_prefill import WaitingPrefill, plan_chunks

H100 = get_hardware("h100")
LLAMA = get_model("llama-3.1-70b")


def colocated_dict(budget: int = 8192, units: int = 1, **overrides):
    raw = experiment_dict(**overrides)
    del raw["prefill"], raw["decode"]
    raw["colocated"] = {"hardware": "h100", "chips_per_unit": 8, "units": units,
                        "token_budget": budget}
    return raw


def test_planner_fills_the_budget_oldest_first() -> None:
    queue = (WaitingPrefill(1, 30, True, 9.0), WaitingPrefill(2, 100, False, 5.0),
             WaitingPrefill(3, 10, False, 1.0))
    # budget 100 - 10 decodes = 90: request 1 finishes (30), request 2 starts and takes 60
    plan = plan_chunks(queue, decodes=10, token_budget=100, max_running=12, kv_free_bytes=7.0)
    assert plan.chunks == ((1, 30), (2, 60)) and plan.tokens == 90


def test_planner_never_overtakes_a_blocked_request() -> None:
    queue = (WaitingPrefill(1, 50, False, 10.0), WaitingPrefill(2, 5, False, 1.0))
    assert plan_chunks(queue, 0, 100, 8, kv_free_bytes=5.0).chunks == ()  # KV full
    assert plan_chunks(queue, 8, 100, 8, kv_free_bytes=99.0).chunks == ()  # max_running reached


def test_decode_only_iteration_is_a_decode_step() -> None:
    assert mixed_iteration_s(7, 9000, [], [], LLAMA, H100, 8) == decode_step_time(
        7, 9000, LLAMA, H100, 8)


def test_a_compute_bound_chunk_costs_its_flops() -> None:
    """A 4,096-token chunk of Llama-70B on 8 x H100 is compute-bound: FLOPs / (8 x peak x eff),
    plus the step's fixed costs and the all-reduces of the chunk's activations (TP8)."""
    c, p = 4096, 2048
    rate = 8 * H100.peak_flops_bf16 * H100.compute_efficiency
    linear = 2 * LLAMA.active_params * c
    attn = LLAMA.layers * LLAMA.q_heads * LLAMA.head_dim * (2 * c * c + 4 * c * p)
    fixed = H100.step_overhead_s + LLAMA.layers * (H100.layer_overhead_s
                                                    + 3 * H100.tp_layer_latency_s)  # log2(8) = 3
    ring = LLAMA.layers * 4 * 7 / 8 * c * LLAMA.hidden_size * H100.activation_bytes / (
        H100.interconnect_bytes_per_s)
    expected = (linear + attn) / rate + fixed + ring
    assert mixed_iteration_s(0, 0, [p], [c], LLAMA, H100, 8) == pytest.approx(expected, rel=1e-9)


def test_a_whole_prompt_alone_is_a_prefill() -> None:
    assert mixed_iteration_s(0, 0, [0], [700], LLAMA, H100, 8) == pytest.approx(
        prefill_time([700], LLAMA, H100, 8).seconds, rel=1e-12)


def test_config_needs_one_layout() -> None:
    both = colocated_dict()
    both["decode"] = {"hardware": "h100", "chips_per_unit": 8}
    with pytest.raises(ConfigError, match="either"):
        experiment_from_dict(both)
    half = experiment_dict()
    del half["decode"]
    with pytest.raises(ConfigError, match=r"\[decode\] is missing"):
        experiment_from_dict(half)


def _one_request(budget: int) -> dict:
    exp = experiment_from_dict(colocated_dict(
        budget, experiment__duration_s=1.5, workload__arrivals={"kind": "constant"},
        workload__rate_per_s=1.0, workload__prompt_tokens={"kind": "fixed", "value": 1000},
        workload__output_tokens={"kind": "fixed", "value": 10}))
    [row] = run_experiment(exp).tables["requests"].to_pylist()
    return row


@pytest.mark.parametrize("budget, chunks", [(8192, [(0, 1000)]),
                                            (400, [(0, 400), (400, 400), (800, 200)])])
def test_single_request_timeline_is_exact(budget, chunks) -> None:
    row = _one_request(budget)
    first = 1.0 + sum(mixed_iteration_s(0, 0, [p], [c], LLAMA, H100, 8) for p, c in chunks)
    last = first + sum(decode_step_time(1, 1001 + i, LLAMA, H100, 8) for i in range(9))
    assert row["status"] == "completed" and row["prefill_unit"] == "colocated-0"
    assert row["decode_unit"] == "colocated-0" and row["kv_bytes"] is None
    assert row["transfer_start_s"] is None
    assert row["prefill_start_s"] == pytest.approx(1.0)
    assert row["first_token_s"] == pytest.approx(first, rel=1e-12)
    assert row["last_token_s"] == pytest.approx(last, rel=1e-12)


def _tpot_ms(raw: dict) -> float:
    summary = run_experiment(experiment_from_dict(raw)).summary
    assert summary["completed"] == summary["submitted"] > 10
    return float(summary["mean_tpot_ms"])


def _workload(prompt: int) -> dict:
    return {"experiment__duration_s": 10.0, "workload__arrivals": {"kind": "constant"},
            "workload__rate_per_s": 2.0,
            "workload__prompt_tokens": {"kind": "fixed", "value": prompt},
            "workload__output_tokens": {"kind": "fixed", "value": 200}}


def test_prefill_load_slows_colocated_decodes_but_not_disaggregated_ones() -> None:
    """The same arrivals with short (500) and long (6,000-token) prompts: on a colocated server
    each long prompt's prefill shares iterations with the running decodes and stretches them
    (at 2 req/s a 6,000-token prefill of ~0.2 s lands in every ~0.5 s of a request's decode);
    on dedicated decode servers only the KV read grows (a few % of the weights read)."""
    gpu = {"hardware": "h100", "chips_per_unit": 8, "units": 1}
    coloc = {p: _tpot_ms(colocated_dict(**_workload(p))) for p in (500, 6000)}
    disagg = {p: _tpot_ms(experiment_dict(prefill=gpu, decode=gpu, **_workload(p)))
              for p in (500, 6000)}
    assert coloc[6000] > 1.3 * coloc[500]
    assert disagg[6000] < 1.1 * disagg[500]
    assert coloc[6000] > 1.2 * disagg[6000]


def test_kv_reserved_never_exceeds_capacity_and_every_request_ends() -> None:
    raw = colocated_dict(**_workload(6000))
    raw["workload"]["rate_per_s"] = 20.0
    result = run_experiment(experiment_from_dict(raw))
    rows = result.tables["requests"].to_pylist()
    assert all(r["status"] in ("completed", "failed") for r in rows)
    assert len(rows) == result.summary["submitted"]
    ts = result.tables["timeseries"].to_pylist()
    cap = (8 * H100.memory_bytes - LLAMA.weight_bytes)
    unit = [r for r in ts if r["kind"] == "colocated"]
    assert unit and max(r["kv_used_bytes"] for r in unit) <= cap
    assert max(r["kv_used_bytes"] for r in unit) >= float(kv_bytes(6200, LLAMA))


def test_losing_a_colocated_unit_redoes_its_requests() -> None:
    raw = colocated_dict(units=2, workload__rate_per_s=6.0,
                         workload__output_tokens={"kind": "fixed", "value": 400},
                         faults={"unit_loss": [{"unit": "colocated-1", "at_s": 2.0}]})
    result = run_experiment(experiment_from_dict(raw))
    rows = result.tables["requests"].to_pylist()
    assert len(rows) == result.summary["submitted"] > 10
    assert all(r["status"] == "completed" for r in rows)
    router = next(c for c in result.raw["components"] if c["name"] == "router")
    assert router["units_down"] == ["colocated-1"] and router["redone"] > 0
    late = [r for r in rows if r["arrival_s"] > 2.5]
    assert late and all(r["prefill_unit"] == r["decode_unit"] == "colocated-0" for r in late)
    assert all(r["first_token_s"] <= r["last_token_s"] for r in rows)

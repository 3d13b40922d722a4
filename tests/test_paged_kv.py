"""Paged KV: block arithmetic, and a hand-computed preemption sequence on a decode unit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.paged_kv import PagedKv, paged_kv
from disagg.experiments.run import run_experiment

H100 = get_hardware("h100")
L8B = get_model("llama-3.1-8b")
BLOCK = 16 * 32 * 8 * 128 * 2 * 2  # 16 tokens x layers x kv heads x head dim x K,V x 2 bytes


def test_blocks_watermark_and_steps_that_fit_by_hand() -> None:
    kv = paged_kv(10.5 * BLOCK, L8B)  # 10 whole blocks; int(0.01 x 10) = 0 watermark blocks
    assert (kv.block_bytes, kv.capacity_blocks, kv.watermark_blocks) == (BLOCK, 10, 0)
    assert [kv.blocks(n) for n in (1, 16, 17, 48, 80, 81)] == [1, 1, 2, 3, 5, 6]
    big = paged_kv(1000 * BLOCK, L8B)
    assert big.watermark_blocks == 10 and big.admit_capacity_bytes == 990 * BLOCK
    # two requests at 78 tokens, one token per step: 5 + 5 blocks up to 80 tokens; the third
    # step takes both to 81 tokens = 6 + 6 > 10 blocks: two steps fit
    assert kv.steps_that_fit(np.array([78, 78]), np.ones((5, 2), np.int64)) == 2
    assert kv.steps_that_fit(np.array([78]), np.ones((5, 1), np.int64)) == 5
    assert kv.steps_that_fit(np.array([78]), np.ones((5, 1), np.int64), other_blocks=5) == 2
    # the same by the plain-decoding path (no matrix of ones)
    assert kv.steps_that_fit_plain(np.array([78, 78]), 5) == 2
    assert kv.steps_that_fit_plain(np.array([78]), 5) == 5
    assert kv.steps_that_fit_plain(np.array([78]), 0) == 0
    # 9 blocks at 144 tokens: the first step (145 tokens) takes a tenth block, the 17th an 11th
    assert kv.steps_that_fit_plain(np.array([144]), 40) == 16


def _run(allocation: str, preemption: str = "recompute") -> dict[int, dict]:
    """Two requests (47-token prompts, 60 output tokens; Llama-8B, one H100 per unit) at 0.01 s
    and 0.02 s on a decode unit whose KV holds 10 blocks of 16 tokens."""
    gpu = {"hardware": "h100", "chips_per_unit": 1, "units": 1}
    tiny = {"name": "h100", "memory_bytes": L8B.weight_bytes + 10.5 * BLOCK}
    exp = experiment_from_dict(experiment_dict(
        model="llama-3.1-8b", prefill=gpu,
        decode={**gpu, "hardware": tiny, "kv_allocation": allocation, "preemption": preemption},
        experiment__duration_s=0.025, workload__arrivals={"kind": "constant"},
        workload__rate_per_s=100.0, workload__prompt_tokens={"kind": "fixed", "value": 47},
        workload__output_tokens={"kind": "fixed", "value": 60}))
    rows = run_experiment(exp).tables["requests"].to_pylist()
    assert [r["status"] for r in rows] == ["completed", "completed"]
    return {r["request_id"]: r for r in rows}


def test_the_latest_request_is_preempted_when_a_step_cannot_grow_and_resumes_after() -> None:
    """By hand: A decodes alone from its admission (context 48 = 3 blocks) until the first
    boundary at or after B's KV arrives; B joins (3 blocks). Both gain one token per step; the
    step that would take them past 80 tokens each (6 + 6 > 10 blocks) cannot grow: B, the
    latest admitted, is preempted before it (vLLM v1 FCFS) and waits — A's blocks keep growing,
    so B's 5 do not fit again — until A ends after its 59th decode token. B then resumes at A's
    last boundary: a recompute (prefill of its context) and its remaining tokens alone."""
    rows = _run("paged")
    a, b = rows[0], rows[1]
    t, ctx_a = a["decode_start_s"], 48
    while t < b["transfer_end_s"]:  # A alone, one token per step
        t += decode_step_time(1, ctx_a, L8B, H100, 1)
        ctx_a += 1
    assert b["decode_start_s"] == pytest.approx(t, rel=1e-12)
    ctx_b = 48
    while -(-(ctx_a + 1) // 16) + -(-(ctx_b + 1) // 16) <= 10:  # the next step fits
        t += decode_step_time(2, ctx_a + ctx_b, L8B, H100, 1)
        ctx_a, ctx_b = ctx_a + 1, ctx_b + 1
    # A, ahead by the steps it ran alone, is the first to need a 6th block (81 tokens); B
    # (5 blocks) is preempted with its context
    assert ctx_a == 80 and ctx_b == 80 - (a_alone := 80 - 48 - (ctx_b - 48)) and a_alone > 0
    preempted_at = ctx_b
    while ctx_a < 48 + 59:  # A alone to its last token
        t += decode_step_time(1, ctx_a, L8B, H100, 1)
        ctx_a += 1
    assert a["last_token_s"] == pytest.approx(t, rel=1e-12) and a["preemptions"] == 0
    t += prefill_time([preempted_at], L8B, H100, 1).seconds  # B's recompute, then its steps
    while ctx_b < 48 + 59:
        t += decode_step_time(1, ctx_b, L8B, H100, 1)
        ctx_b += 1
    assert b["last_token_s"] == pytest.approx(t, rel=1e-12) and b["preemptions"] == 1


def test_reservation_holds_the_second_request_back_instead() -> None:
    """Reserved up front, A takes 107 tokens' bytes = 6.7 blocks' worth of the 10: B (also 6.7)
    waits for A's end (held by the router's KV-aware placement or the unit's admission) and is
    never preempted."""
    rows = _run("reserve")
    assert rows[1]["decode_start_s"] >= rows[0]["last_token_s"]
    assert rows[0]["preemptions"] == rows[1]["preemptions"] == 0


def test_swap_costs_the_kv_over_the_host_link_both_ways() -> None:
    """The same two requests with swap: B's 5 blocks go to host memory at 25 GB/s before A's next
    step (a stall of that step) and come back before B's first step when it resumes; no
    recompute."""
    kv = PagedKv(16, BLOCK, 10, 0, "swap", 25e9)
    assert kv.bytes_for(78) / kv.swap_bytes_per_s == pytest.approx(5 * BLOCK / 25e9)
    rows = _run("paged", "swap")
    a, b = rows[0], rows[1]
    swap_s = 5 * BLOCK / 25e9  # B holds 78 tokens = 5 blocks when preempted
    t, ctx_a = b["decode_start_s"], 48 + (80 - 48 - 30)  # B joined when A had 2 tokens more
    ctx_b = 48
    while -(-(ctx_a + 1) // 16) + -(-(ctx_b + 1) // 16) <= 10:
        t += decode_step_time(2, ctx_a + ctx_b, L8B, H100, 1)
        ctx_a, ctx_b = ctx_a + 1, ctx_b + 1
    assert (ctx_a, ctx_b) == (80, 78)
    t += swap_s  # swap-out stalls A's next step
    while ctx_a < 48 + 59:
        t += decode_step_time(1, ctx_a, L8B, H100, 1)
        ctx_a += 1
    assert a["last_token_s"] == pytest.approx(t, rel=1e-12)
    t += swap_s  # swap-in before B's first step back
    while ctx_b < 48 + 59:
        t += decode_step_time(1, ctx_b, L8B, H100, 1)
        ctx_b += 1
    assert b["last_token_s"] == pytest.approx(t, rel=1e-12) and b["preemptions"] == 1


def test_a_colocated_unit_under_kv_pressure_preempts_and_finishes_every_request() -> None:
    """Ten 300-token prompts with 400 output tokens at 20/s on a colocated H100 whose KV holds
    100 blocks (1,600 tokens; each request alone needs 44 blocks at its end): the unit admits by
    prompt blocks, preempts as decodes grow, recomputes and still completes every request; with
    reservation it never preempts."""
    tiny = {"name": "h100", "memory_bytes": L8B.weight_bytes + 100.5 * BLOCK}
    raw = experiment_dict(model="llama-3.1-8b", experiment__duration_s=0.5,
                          workload__arrivals={"kind": "constant"}, workload__rate_per_s=20.0,
                          workload__prompt_tokens={"kind": "fixed", "value": 300},
                          workload__output_tokens={"kind": "fixed", "value": 400})
    del raw["prefill"], raw["decode"]
    out = {}
    for allocation in ("paged", "reserve"):
        raw["colocated"] = {"hardware": tiny, "chips_per_unit": 1, "units": 1,
                            "kv_allocation": allocation}
        result = run_experiment(experiment_from_dict(raw))
        rows = result.tables["requests"].to_pylist()
        assert len(rows) == 10 and all(r["status"] == "completed" for r in rows)
        out[allocation] = result.summary["preemptions"]
    assert out["paged"] > 0 and out["reserve"] == 0

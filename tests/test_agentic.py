"""Agent tasks: chains of dependent calls on the virtual engine, hand-computed timelines, the
session-trace replay, context limits and the task invariants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import experiment_dict
from rich.console import Console

from disagg.cluster.config import experiment_from_dict, load_experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.perf import decode_step_time, kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.messages import PREFIX_BLOCK_TOKENS
from disagg.cluster.workload.agentic import plan_tasks
from disagg.cluster.workload.kinds import AgenticWorkload
from disagg.cluster.workload.plan import SloTargets
from disagg.cluster.workload.sessions import AgentSessions
from disagg.experiments.plan.bounds import workload_shape
from disagg.experiments.plan.candidates import objective_value
from disagg.experiments.results.invariants import check_results
from disagg.experiments.run import run_experiment
from disagg.experiments.view.live_tasks import task_line

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _fixed(value: float) -> dict[str, Any]:
    return {"kind": "fixed", "value": value}


def _agentic(**workload: Any) -> Any:
    w = {"kind": "agentic", "rate_per_s": 1.0, "arrivals": {"kind": "constant"},
         "max_tasks": 1, "calls_per_task": _fixed(3), "first_prompt_tokens": _fixed(1000),
         "new_tokens": _fixed(300), "output_tokens": _fixed(10),
         "delay_s": {"kind": "fixed", "value_s": 0.5}}
    w.update(workload)
    return experiment_from_dict(experiment_dict(workload=w, experiment__duration_s=30.0,
                                                slo={"ttft_s": 1.0, "tpot_s": 0.02,
                                                     "task_s": 10.0}))


def _call_s(exp: Any, prompt: int, output: int) -> float:
    """One call alone in the cluster, from the perf model: prefill, the KV over the trn2 host's
    3,200 Gbps EFA (400e9 B/s, the narrowest link) plus 35 us, then output - 1 decode steps."""
    m, trn, cs3 = exp.model, exp.prefill.hardware, exp.decode.hardware
    first = prefill_time([prompt], m, trn, 4).seconds
    ready = first + kv_bytes(prompt, m) / 400e9 + 35e-6
    return ready + sum(decode_step_time(1, prompt + 1 + i, m, cs3, 4) for i in range(output - 1))


def test_single_task_time_is_the_hand_sum_of_its_calls_and_delays() -> None:
    exp = _agentic()
    result = run_experiment(exp)
    [task] = result.tables["tasks"].to_pylist()
    calls = sorted(result.tables["requests"].to_pylist(), key=lambda r: r["arrival_s"])
    # prompts by hand: 1000; 1000 + 10 + 300; 1310 + 10 + 300
    prompts = [1000, 1310, 1620]
    assert [c["prompt_tokens"] for c in calls] == prompts
    want = sum(_call_s(exp, p, 10) for p in prompts) + 2 * 0.5
    assert task["status"] == "completed" and task["calls"] == 3
    assert task["start_s"] == pytest.approx(1.0)  # constant arrivals at 1 task/s: first at 1 s
    assert task["duration_s"] == pytest.approx(want, rel=1e-9)
    assert task["slo_met"] is (want <= 10.0)
    for a, b in zip(calls, calls[1:], strict=False):
        assert b["arrival_s"] == pytest.approx(a["end_s"] + 0.5, rel=1e-12)
        assert b["arrival_s"] >= a["end_s"]
    assert result.summary["tasks_completed"] == 1
    assert result.summary["p50_task_s"] == pytest.approx(want, rel=1e-9)


def test_next_prompt_reuses_the_previous_prompts_blocks() -> None:
    w = _agentic(first_prompt_tokens=_fixed(1500), new_tokens=_fixed(700)).workload
    [task] = plan_tasks(w, 30.0, 131_072, np.random.default_rng(0))
    a, b, c = task.calls
    assert (a.prompt_tokens, b.prompt_tokens, c.prompt_tokens) == (1500, 2210, 2920)
    assert len(a.hashes) == 3  # ceil(1500 / 512)
    assert b.hashes[:2] == a.hashes[:2]  # 1500 // 512 = 2 full blocks carried over
    assert c.hashes[: 2210 // PREFIX_BLOCK_TOKENS] == b.hashes[: 2210 // PREFIX_BLOCK_TOKENS]
    assert len(set(c.hashes)) == len(c.hashes)


def test_context_limit_ends_the_task_or_truncates_to_the_first_prompt() -> None:
    rng = np.random.default_rng(0)
    # 1000 + 10 = 1010; next 1310 + 10 = 1320 fits 1500; next 1620 + 10 does not
    ended = _agentic(max_context_tokens=1500, on_context_limit="end_task").workload
    [task] = plan_tasks(ended, 30.0, 1500, rng)
    assert [c.prompt_tokens for c in task.calls] == [1000, 1310] and task.end == "context_limit"
    trunc = _agentic(max_context_tokens=1500, calls_per_task=_fixed(4)).workload
    [task] = plan_tasks(trunc, 30.0, 1500, rng)
    # the third call keeps only the first prompt: 1000 + 300; the fourth would be
    # 1300 + 10 + 300 + 10 > 1500, so it too restarts from the first prompt: 1000 + 300
    assert [c.prompt_tokens for c in task.calls] == [1000, 1310, 1300, 1300]
    assert task.end == "completed"
    tight = _agentic(max_context_tokens=1300).workload  # 1000 + 300 + 10 > 1300: no room left
    [task] = plan_tasks(tight, 30.0, 1300, rng)
    assert [c.prompt_tokens for c in task.calls] == [1000] and task.end == "context_limit"


def test_context_limited_task_runs_and_ends_with_its_status() -> None:
    result = run_experiment(_agentic(max_context_tokens=1500, on_context_limit="end_task"))
    [task] = result.tables["tasks"].to_pylist()
    assert (task["status"], task["calls"]) == ("context_limit", 2)
    assert result.summary["tasks_by_status"]["context_limit"] == 1


def test_a_failed_call_ends_its_task_failed() -> None:
    w = _agentic().workload
    sessions = AgentSessions(plan_tasks(w, 30.0, 131_072, np.random.default_rng(0)),
                             SloTargets(1.0, 0.02), "agent", 30.0)
    [first] = sessions.start()
    assert sessions.after(first.request_id, 2.0, "rejected") is None
    [row] = sessions.task_rows()
    assert (row["status"], row["calls"], row["end_s"]) == ("failed", 1, 2.0)
    assert sessions.active_users == 0


def test_a_call_due_after_the_run_leaves_the_task_unfinished() -> None:
    w = _agentic().workload
    sessions = AgentSessions(plan_tasks(w, 30.0, 131_072, np.random.default_rng(0)),
                             SloTargets(1.0, 0.02), "agent", 3.0)
    [first] = sessions.start()
    assert sessions.after(first.request_id, 2.6) is None  # 2.6 + 0.5 delay >= 3.0
    assert sessions.task_rows()[0]["status"] == "unfinished"


def _session_trace(path: Any) -> None:
    rows = [{"session_id": "a", "timestamp": 0, "input_length": 800, "output_length": 20},
            {"session_id": "b", "timestamp": 2000, "input_length": 500, "output_length": 5},
            {"session_id": "a", "delay": 1500, "input_length": 1200, "output_length": 8},
            {"session_id": "a", "delay": 250, "tool_wait_ms": 250, "input_length": 1400,
             "output_length": 4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_session_trace_replay_honours_delays_after_each_end(tmp_path) -> None:
    _session_trace(tmp_path / "s.jsonl")
    exp = _agentic(rate_per_s=None, trace={"path": str(tmp_path / "s.jsonl")}, max_tasks=None)
    result = run_experiment(exp, out_dir=tmp_path / "out")
    tasks = pq.read_table(tmp_path / "out" / "tasks.parquet").to_pylist()
    by_id = {r["request_id"]: r for r in result.tables["requests"].to_pylist()}
    a, b = tasks
    assert (a["calls"], b["calls"], a["start_s"], b["start_s"]) == (3, 1, 0.0, 2.0)
    c1, c2, c3 = (by_id[i] for i in a["request_ids"])
    assert [c["prompt_tokens"] for c in (c1, c2, c3)] == [800, 1200, 1400]
    assert c2["arrival_s"] == pytest.approx(c1["end_s"] + 1.5, rel=1e-12)
    assert c3["arrival_s"] == pytest.approx(c2["end_s"] + 0.5, rel=1e-12)
    assert a["status"] == b["status"] == "completed"


def test_agentic_config_needs_a_rate_or_a_trace() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        AgenticWorkload(kind="agentic")


def test_bad_session_trace_names_the_line_and_field(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"session_id": "a", "input_length": 10, "output_length": -1}\n')
    exp = _agentic(rate_per_s=None, trace={"path": str(path)}, max_tasks=None)
    with pytest.raises(ConfigError, match="line 1: field 'output_length'"):
        run_experiment(exp)


@pytest.mark.no_invariants("task_sequence")
def test_invariants_catch_a_call_sent_before_its_predecessor_ended() -> None:
    exp = _agentic()
    result = run_experiment(exp)
    rows = result.tables["requests"].to_pylist()
    assert check_results(exp, result.tables["requests"], result.tables["transfers"],
                         result.summary, result.tables["tasks"]) == []
    second = sorted(rows, key=lambda r: r["arrival_s"])[1]
    second["arrival_s"] -= 1.0  # now before the first call's end (the first takes > 0.5 s)
    table = type(result.tables["requests"]).from_pylist(rows, schema=result.tables["requests"].schema)
    found = check_results(exp, table, result.tables["transfers"], result.summary,
                          result.tables["tasks"])
    assert "task_sequence" in {v.invariant for v in found}


def test_reasoning_preset_lengths_are_thousands_of_tokens() -> None:
    exp = experiment_from_dict(experiment_dict(
        workload__output_tokens={"kind": "preset", "name": "reasoning_r1"}))
    out = exp.workload.output_tokens.sample(np.random.default_rng(0), 20_000)
    # the preset's published cap (MLPerf DS-R1: 20K) and its assumed median (4,000)
    assert out.max() <= 20_000 and 3_800 < np.median(out) < 4_200
    with pytest.raises(ValueError, match="unknown preset 'nope'; known: reasoning_hard"):
        experiment_from_dict(experiment_dict(workload__output_tokens={"kind": "preset",
                                                                     "name": "nope"}))


def test_plan_bounds_and_objective_count_tasks() -> None:
    shape = workload_shape(_agentic())
    assert shape.calls_per_task == 3
    assert shape.mean_prompt_tokens == pytest.approx((1000 + 1310 + 1620) / 3)
    assert shape.mean_new_tokens == pytest.approx((1000 + 300 + 300) / 3)
    # 0.1 tasks/s = 360 tasks/h on a 360 $/h cluster: one task per dollar
    assert objective_value("tasks_per_dollar", 0.1, 360.0) == pytest.approx(1.0)
    assert objective_value("goodput_per_dollar", 0.1, 360.0) == pytest.approx(0.1 / 360)


def test_live_view_task_line_is_plain_counts() -> None:
    console = Console(record=True, width=200)
    console.print(*task_line({"tasks_total": 60, "tasks": {
        "active": 12, "completed": 40, "context_limit": 1, "failed": 2, "unfinished": 5}}))
    assert console.export_text().strip() == ("tasks: 60 planned · active 12 · completed 40 · "
                                             "context limit 1 · failed 2 · unfinished 5")
    assert task_line({"submitted": 3}) == []


@pytest.mark.parametrize("name", ["agentic_coding", "reasoning"])
def test_shipped_experiments_run_and_every_task_ends_once(name: str) -> None:
    exp = load_experiment(EXPERIMENTS / f"{name}.toml",
                          {"experiment.duration_s": 60.0, "workload.max_tasks": 4})
    result = run_experiment(exp)
    s = result.summary
    assert s["tasks"] == 4 == result.tables["tasks"].num_rows
    assert sum(s["tasks_by_status"].values()) == 4
    calls = sum(len(t["request_ids"]) for t in result.tables["tasks"].to_pylist())
    assert calls == result.tables["requests"].num_rows

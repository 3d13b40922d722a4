"""Trace parsing and replay: exact inter-arrival times and lengths after scaling, and every kind of
bad trace input exits 2 with the file, the line number and the problem."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from conftest import experiment_dict, make_experiment

from disagg.cluster.config import load_experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.messages import Request
from disagg.cluster.workload.plan import RequestPlan, SloTargets, plan_requests
from disagg.cluster.workload.traces import FORMATS, Trace, read_trace
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONV = ROOT / "experiments" / "traces" / "azure_llm_2023_conv.csv"
SLO = SloTargets(1.0, 0.02)


def _azure_reference(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trace read independently of cluster/workload/traces.py: seconds as Python ints of 100 ns."""
    with open(path, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    ticks = []
    for r in rows:
        whole, frac = r["TIMESTAMP"].split(".")
        base = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        ticks.append(int(base.timestamp()) * 10**7 + int(frac.ljust(7, "0")))
    return (np.array(ticks, dtype=np.int64), np.array([int(r["ContextTokens"]) for r in rows]),
            np.array([int(r["GeneratedTokens"]) for r in rows]))


def _trace_workload(**extra) -> dict:
    return {"kind": "trace", "path": str(CONV), **extra}


@pytest.mark.parametrize("speedup", [1.0, 4.0, 0.5])
def test_replay_reproduces_gaps_and_lengths_after_speedup(speedup: float) -> None:
    ticks, prompts, outputs = _azure_reference(CONV)
    exp = make_experiment(workload=_trace_workload(start_s=100.0, end_s=400.0, speedup=speedup),
                          experiment__duration_s=1e5)
    reqs = plan_requests(exp.workload, SLO, 1e5, np.random.default_rng(0))
    rel = ticks - ticks[0]
    keep = np.flatnonzero((rel >= 100 * 10**7) & (rel < 400 * 10**7))
    assert len(reqs) == len(keep) > 100
    arrivals = np.array([r.arrival_s for r in reqs])
    expected = (rel[keep] - 100 * 10**7) / 1e7 / speedup
    np.testing.assert_allclose(arrivals, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diff(arrivals), np.diff(ticks[keep]) / 1e7 / speedup,
                               rtol=0, atol=1e-9)
    assert [r.prompt_tokens for r in reqs] == prompts[keep].tolist()
    assert [r.output_tokens for r in reqs] == outputs[keep].tolist()


def test_target_rate_sets_the_mean_inter_arrival_and_keeps_the_shape() -> None:
    ticks, _, _ = _azure_reference(CONV)
    exp = make_experiment(workload=_trace_workload(rate_per_s=20.0, max_requests=500))
    reqs = plan_requests(exp.workload, SLO, 1e6, np.random.default_rng(0))
    arrivals = np.array([r.arrival_s for r in reqs])
    assert len(reqs) == 500
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) == pytest.approx(20.0, rel=1e-12)
    gaps = np.diff(ticks[:500]) / 1e7
    np.testing.assert_allclose(np.diff(arrivals), gaps * (np.diff(arrivals).sum() / gaps.sum()),
                               rtol=1e-9, atol=1e-12)


def test_sampling_keeps_a_seeded_subset_in_order() -> None:
    exp = make_experiment(workload=_trace_workload(end_s=600.0, sample_fraction=0.25))
    a = plan_requests(exp.workload, SLO, 1e6, np.random.default_rng(1))
    b = plan_requests(exp.workload, SLO, 1e6, np.random.default_rng(1))
    full = plan_requests(make_experiment(workload=_trace_workload(end_s=600.0)).workload, SLO,
                         1e6, np.random.default_rng(1))
    assert a == b
    assert 0.15 * len(full) < len(a) < 0.35 * len(full)
    by_time = {r.arrival_s: (r.prompt_tokens, r.output_tokens) for r in full}
    assert all(by_time[r.arrival_s] == (r.prompt_tokens, r.output_tokens) for r in a)


def test_replay_on_the_virtual_engine_writes_the_trace_arrivals() -> None:
    ticks, prompts, _ = _azure_reference(CONV)
    exp = make_experiment(workload=_trace_workload(end_s=10.0), experiment__duration_s=10.0)
    rows = run_experiment(exp).tables["requests"].to_pylist()
    n = int(np.sum(ticks - ticks[0] < 10 * 10**7))
    assert len(rows) == n and all(r["status"] == "completed" for r in rows)
    np.testing.assert_allclose([r["arrival_s"] for r in rows], (ticks[:n] - ticks[0]) / 1e7,
                               atol=1e-9)
    assert [r["prompt_tokens"] for r in rows] == prompts[:n].tolist()


def test_burstgpt_and_mooncake_formats(tmp_path: Path) -> None:
    bg = tmp_path / "bg.csv"
    bg.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                  "5.0,ChatGPT,100,20,120,Conversation log\n"
                  "6.25,ChatGPT,200,40,240,Conversation log\n"
                  "7.5,GPT-4,300,0,300,Conversation log\n")  # a failed request: dropped
    t = read_trace(bg, FORMATS["burstgpt"])
    assert t.arrival_ns.tolist() == [5_000_000_000, 6_250_000_000]
    assert (t.prompt_tokens.tolist(), t.output_tokens.tolist(), t.dropped_rows) == (
        [100, 200], [20, 40], 1)
    mc = tmp_path / "mc.jsonl"
    mc.write_text("\n".join(json.dumps(o) for o in [
        {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [0, 1]},
        {"timestamp": 1500, "input_length": 700, "output_length": 9, "hash_ids": [0]}]) + "\n")
    exp = make_experiment(workload={"kind": "trace", "path": str(mc), "format": "mooncake",
                                    "speedup": 3.0})
    reqs = plan_requests(exp.workload, SLO, 100.0, np.random.default_rng(0))
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in reqs] == [
        (0.0, 6955, 52), (0.5, 700, 9)]


def test_trace_path_is_relative_to_the_experiment_file(tmp_path: Path) -> None:
    sub = tmp_path / "exps"
    sub.mkdir()
    (sub / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                               "2023-11-16 18:15:46.6805900,374,44\n")
    raw = experiment_dict(workload={"kind": "trace", "path": "t.csv"})
    (sub / "e.toml").write_text(tomli_w.dumps(raw))
    exp = load_experiment(sub / "e.toml")
    assert Path(exp.workload.path) == (sub / "t.csv").resolve()


HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
GOOD = "2023-11-16 18:15:46.6805900,374,44\n"
BAD_CASES = {
    "missing column": ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,374\n", 1,
                       "missing column 'GeneratedTokens'"),
    "unparsable timestamp": (HEADER + GOOD + "16/11/2023 18:15,374,44\n", 3,
                             "cannot parse timestamp '16/11/2023 18:15'"),
    "negative tokens": (HEADER + GOOD + GOOD + "2023-11-16 18:15:47.0,-12,44\n", 4,
                        "'ContextTokens': value '-12' is negative"),
    "non-integer tokens": (HEADER + GOOD + "2023-11-16 18:15:47.0,12,4.5\n", 3,
                           "'GeneratedTokens': value '4.5' is not an integer"),
    "empty file": ("", 1, "the file is empty"),
    "header only": (HEADER, 2, "no requests"),
    "unsorted": (HEADER + "2023-11-16 18:15:47.5,374,44\n" + GOOD, 3,
                 "0.81941 s before the previous row's; allowed: rows in time order"),
    "beyond 64 bits": (HEADER + GOOD + "2023-11-16 18:15:47.0,99999999999999999999999,44\n", 3,
                       "is beyond 64 bits"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_trace_exits_2_with_file_line_and_problem(case: str, tmp_path: Path, capsys) -> None:
    text, line, problem = BAD_CASES[case]
    (tmp_path / "bad.csv").write_text(text)
    raw = experiment_dict(workload={"kind": "trace", "path": "bad.csv"})
    (tmp_path / "exp.toml").write_text(tomli_w.dumps(raw))
    code = main(["validate", str(tmp_path / "exp.toml")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert f"{tmp_path / 'bad.csv'}, line {line}: " in err and problem in err


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 5, "output_length": 2}\n'
                                      '{"timestamp": 10, "input_length": 5}\n')
    exp = make_experiment(workload={"kind": "trace", "path": str(tmp_path / "t.jsonl"),
                                    "format": "mooncake"})
    with pytest.raises(ConfigError, match=r"t\.jsonl, line 2: missing key 'output_length'"):
        exp.workload.load()


def test_jsonl_plain_and_spelled_out_values_read_alike(tmp_path: Path) -> None:
    """Plain JSON integers (the common case) and the same values spelled as strings or
    integral floats give the same rows; a line out of time order after plain ones, a negative
    block id and a boolean token count are each refused naming their line."""
    lines = ['{"timestamp": 7, "input_length": 5, "output_length": 2, "hash_ids": [0, 3]}',
             '{"timestamp": "8", "input_length": 5.0, "output_length": "2", "hash_ids": []}',
             '{"timestamp": 9, "input_length": 6, "output_length": 1}']
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    trace = read_trace(path, FORMATS["mooncake"], jsonl=True)
    assert trace.arrival_ns.tolist() == [7_000_000, 8_000_000, 9_000_000]  # ms -> ns by hand
    assert trace.prompt_tokens.tolist() == [5, 5, 6] and trace.output_tokens.tolist() == [2, 2, 1]
    assert trace.prefix_hashes == ((0, 3), (), ())
    for bad, problem in [
        ('{"timestamp": 6, "input_length": 5, "output_length": 2}', "line 4: timestamp is 0.003 s"),
        ('{"timestamp": 9, "input_length": 5, "output_length": 2, "hash_ids": [1, -1]}',
         "line 4: key 'hash_ids'"),
        ('{"timestamp": 9, "input_length": 5, "output_length": 2, "hash_ids": [1, true]}',
         "line 4: key 'hash_ids'"),
        ('{"timestamp": 9, "input_length": 5, "output_length": 2, "hash_ids": [2.0]}',
         "line 4: key 'hash_ids'"),
        ('{"timestamp": 9, "input_length": 5, "output_length": 2, "hash_ids": [9223372036854775808]}',
         "line 4: key 'hash_ids'"),
        ('{"timestamp": 9, "input_length": true, "output_length": 2}',
         "line 4: column 'input_length': value True is not an integer"),
    ]:
        bad_path = tmp_path / "bad.jsonl"
        bad_path.write_text("\n".join([*lines, bad]) + "\n")
        with pytest.raises(ConfigError, match=problem):
            read_trace(bad_path, FORMATS["mooncake"], jsonl=True)


def test_jsonl_dropped_rows_take_their_hash_ids_with_them(tmp_path: Path) -> None:
    """A row with zero output tokens is dropped with its block ids: the ids stay aligned with
    the rows kept; rows at the same instant keep their file order."""
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in [
        {"timestamp": 3, "input_length": 5, "output_length": 2, "hash_ids": [7]},
        {"timestamp": 3, "input_length": 6, "output_length": 0, "hash_ids": [8, 9]},
        {"timestamp": 3, "input_length": 4, "output_length": 1, "hash_ids": [10, 11]},
        {"timestamp": 5, "input_length": 9, "output_length": 3}]) + "\n")
    trace = read_trace(path, FORMATS["mooncake"], jsonl=True)
    assert trace.prompt_tokens.tolist() == [5, 4, 9] and trace.dropped_rows == 1
    assert trace.prefix_hashes == ((7,), (10, 11), ())


@pytest.mark.parametrize("line", [
    '{"a": [1, 2]}\n', '{"a": 1}', '  {"a": 1}\n', '{"a": 1}  \n', '{"a": 1}\t', "[1, 2]\n",
    '"text"\n', "7\n", '{"a": NaN}\n', '{"a": 1} {"b": 2}\n', '{"a": 1}x\n', '{"a": 1,}\n',
    '{"a": \n', "\ufeff{}\n", '{"a": "\\u00e9"}\n', "nul\n", "}\n",
])
def test_jsonl_line_reads_as_json_loads(line: str, tmp_path: Path) -> None:
    """Each line of a JSONL trace gives what ``json.loads`` gives it (the oracle), and a line it
    refuses is named with json's own reason, whichever of the reader's paths the line takes."""
    path = tmp_path / "t.jsonl"
    path.write_text("\n" + line, encoding="utf-8")  # line 2: a BOM there is no file's BOM
    try:
        expected = json.loads(line)
    except json.JSONDecodeError as e:
        with pytest.raises(ConfigError, match=rf"line 2: not valid JSON: {re.escape(e.msg)}$"):
            read_trace(path, FORMATS["mooncake"], jsonl=True)
        return
    if isinstance(expected, dict):  # no timestamp key: the row check names what is missing
        with pytest.raises(ConfigError, match=r"line 2: missing key 'timestamp'"):
            read_trace(path, FORMATS["mooncake"], jsonl=True)
    else:
        with pytest.raises(ConfigError, match=r"line 2: expected a JSON object per line"):
            read_trace(path, FORMATS["mooncake"], jsonl=True)


def test_window_with_no_requests_and_missing_file_exit_2(tmp_path: Path, capsys) -> None:
    raw = experiment_dict(workload=_trace_workload(start_s=1e6))
    (tmp_path / "a.toml").write_text(tomli_w.dumps(raw))
    assert main(["validate", str(tmp_path / "a.toml")]) == 2
    assert "keep no request" in capsys.readouterr().err
    raw = experiment_dict(workload={"kind": "trace", "path": "nope.csv"})
    (tmp_path / "b.toml").write_text(tomli_w.dumps(raw))
    assert main(["validate", str(tmp_path / "b.toml")]) == 2
    err = capsys.readouterr().err
    assert "workload.path" in err and "no such trace file" in err


def test_request_plan_iterates_as_it_indexes_across_blocks() -> None:
    """A replay plan longer than one iteration block gives, request by request, the ids,
    arrival times, lengths, class targets and block ids of its arrays and trace rows, as plain
    Python numbers; iterating and indexing agree."""
    n = 9_000  # three blocks of _ITER_BLOCK
    hashes = tuple((k, k + 1) for k in range(n + 5))
    trace = Trace("t", np.arange(n + 5, dtype=np.int64), np.ones(n + 5, dtype=np.int64),
                  np.ones(n + 5, dtype=np.int64), prefix_hashes=hashes)
    rows = np.arange(n, dtype=np.int64) + 5  # plan request k is trace row k + 5
    plan = RequestPlan(np.arange(n) * 0.5, np.arange(n) + 100, np.arange(n) % 7 + 1,
                       np.arange(n) % 2, [("a", 1.0, 0.1), ("b", 2.0, 0.2)], (trace, rows))
    got = list(plan)
    assert got == [Request(k, k * 0.5, k + 100, k % 7 + 1, "ab"[k % 2], (1.0, 2.0)[k % 2],
                           (0.1, 0.2)[k % 2], (k + 5, k + 6)) for k in range(n)]
    assert all(type(r.arrival_s) is float and type(r.prompt_tokens) is int
               and type(r.output_tokens) is int for r in got)
    assert got[4_097] == plan[4_097] and got[-1] == plan[-1]
    bare = RequestPlan(np.array([1.5]), np.array([3]), np.array([4]), np.zeros(1),
                       [("c", 1.0, 0.1)])
    assert list(bare) == [Request(0, 1.5, 3, 4, "c", 1.0, 0.1, ())]

"""Prefix hashes in workloads (Mooncake traces, multi-turn closed loops), cache-aware routing,
decode-kept KV and the KV that crosses the fabric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import experiment_dict, make_request

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.workload.kinds import ClosedLoopWorkload
from disagg.cluster.workload.plan import ClosedLoop, SloTargets
from disagg.cluster.workload.traces import FORMATS, read_trace
from disagg.experiments.run import run_experiment
from disagg.policies import ROUTERS
from disagg.policies.base import PolicyContext, Route, RouterView, UnitView

ROOT = Path(__file__).resolve().parents[1]
CTX = PolicyContext(get_model("llama-3.1-70b"), get_hardware("trainium2"), 4,
                    get_hardware("cs3"), 4)


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


# -- traces -----------------------------------------------------------------------------------


def test_mooncake_hash_ids_follow_their_rows(tmp_path) -> None:
    # a trace must be in time order (an unsorted one is refused: tests/test_bad_input.py)
    path = _write(tmp_path / "t.jsonl", [
        {"timestamp": 0, "input_length": 512, "output_length": 2, "hash_ids": [5]},
        {"timestamp": 10, "input_length": 100, "output_length": 0, "hash_ids": [9]},  # dropped
        {"timestamp": 20, "input_length": 600, "output_length": 3, "hash_ids": [5, 6]},
    ])
    t = read_trace(path, FORMATS["mooncake"], jsonl=True)
    assert t.prompt_tokens.tolist() == [512, 600]
    assert t.prefix_hashes == ((5,), (5, 6))


def test_bad_hash_ids_are_named(tmp_path) -> None:
    path = _write(tmp_path / "t.jsonl", [
        {"timestamp": 0, "input_length": 5, "output_length": 2, "hash_ids": [1, -2]}])
    with pytest.raises(ConfigError, match=r"line 1: key 'hash_ids'"):
        read_trace(path, FORMATS["mooncake"], jsonl=True)


def test_shipped_mooncake_conversation_trace_repeats_36_6_percent_of_blocks() -> None:
    t = read_trace(ROOT / "experiments/traces/mooncake_conversation_trace.jsonl",
                   FORMATS["mooncake"], jsonl=True)
    assert len(t) == 12_031
    seen: set[int] = set()
    repeats = total = 0
    for ids in t.prefix_hashes:
        repeats += sum(1 for h in ids if h in seen)
        total += len(ids)
        seen.update(ids)
    assert repeats / total == pytest.approx(0.366, abs=5e-4)  # the traces README's figure
    assert all(len(ids) == -(-p // 512) for ids, p in zip(t.prefix_hashes, t.prompt_tokens,
                                                          strict=True))


# -- multi-turn closed loop -------------------------------------------------------------------


def test_multi_turn_prompts_extend_the_conversation_and_keep_block_ids() -> None:
    w = ClosedLoopWorkload(kind="closed_loop", users=1, think_time_s=1.0, multi_turn=True,
                           max_context_tokens=5000,
                           prompt_tokens={"kind": "fixed", "value": 700},
                           output_tokens={"kind": "fixed", "value": 100})
    loop = ClosedLoop(w, SloTargets(1.0, 1.0), 1e6, np.random.default_rng(0))
    first = loop.start()[0]
    assert (first.prompt_tokens, first.prefix_hashes) == (700, (0, 1))
    second = loop.after(first.request_id, 10.0)
    # 700 + 100 + 700 = 1,500 tokens: block 0 (full in turn 1) kept, then 2 new blocks
    assert (second.prompt_tokens, second.prefix_hashes) == (1500, (0, 2, 3))
    third = loop.after(second.request_id, 20.0)
    assert (third.prompt_tokens, third.prefix_hashes) == (2300, (0, 2, 4, 5, 6))
    turns = [third]
    for k in range(3):
        turns.append(loop.after(turns[-1].request_id, 30.0 + 10 * k))
    # 2,300 -> 3,100 -> 3,900 -> 4,700; then 4,700 + 800 > 5,000 starts a new conversation
    assert [r.prompt_tokens for r in turns] == [2300, 3100, 3900, 4700]
    fresh = loop.after(turns[-1].request_id, 80.0)
    assert fresh.prompt_tokens == 700 and fresh.prefix_hashes[0] not in turns[-1].prefix_hashes


def test_multi_turn_off_draws_the_same_requests() -> None:
    base = {"kind": "closed_loop", "users": 2, "think_time_s": 0.5}
    a = ClosedLoop(ClosedLoopWorkload(**base), SloTargets(1, 1), 100, np.random.default_rng(3))
    b = ClosedLoop(ClosedLoopWorkload(**base, multi_turn=True), SloTargets(1, 1), 100,
                   np.random.default_rng(3))
    ra, rb = a.start(), b.start()
    assert [(r.arrival_s, r.output_tokens) for r in ra] == [(r.arrival_s, r.output_tokens)
                                                            for r in rb]
    assert all(r.prefix_hashes == () for r in ra) and all(r.prefix_hashes for r in rb)


# -- routing ----------------------------------------------------------------------------------


def _prefill(name: str, outstanding: int, blocks: set[int]) -> UnitView:
    return UnitView(name, "prefill", queued_tokens=outstanding, cached_blocks=frozenset(blocks))


def test_prefix_aware_trades_overlap_against_load() -> None:
    request = make_request(prompt_tokens=4096, prefix_hashes=tuple(range(8)))
    view = RouterView(0.0, (_prefill("prefill-0", 3000, set(range(6))),  # 3,072 tokens cached
                            _prefill("prefill-1", 1000, set())), ())
    # cost = outstanding - weight x cached: unit 0: 3,000 - 3,072 < unit 1: 1,000
    default = ROUTERS.create("prefix_aware", {}, CTX)
    assert default.choose_prefill(request, view) == Route("prefill-0")
    # weight 0.5: 3,000 - 1,536 = 1,464 > 1,000
    half = ROUTERS.create("prefix_aware", {"weight": 0.5}, CTX)
    assert half.choose_prefill(request, view) == Route("prefill-1")
    # weight 0 is least-loaded
    assert ROUTERS.create("prefix_aware", {"weight": 0}, CTX).choose_prefill(
        request, view) == Route("prefill-1")
    with pytest.raises(ConfigError, match="weight"):
        ROUTERS.create("prefix_aware", {"weight": -1}, CTX)


def test_prefix_aware_full_hit_leaves_the_last_token_and_a_cached_unit_wins_a_tie() -> None:
    # a 1,030-token prompt, blocks 0-2 (1,536 tokens) held: cached = 1,029 (the last token runs),
    # cost 2,000 - 1,029 = 971, a tie with unit 1's 971 uncached: it goes to fewer outstanding
    # tokens (caching all 1,030 or 1,536 tokens would make unit 0 cheaper); a 1-token prompt
    # caches nothing: least-loaded
    full = make_request(prompt_tokens=1030, prefix_hashes=(0, 1, 2))
    view = RouterView(0.0, (_prefill("prefill-0", 2000, {0, 1, 2}),
                            _prefill("prefill-1", 971, set())), ())
    assert ROUTERS.create("prefix_aware", {}, CTX).choose_prefill(full, view) == Route("prefill-1")
    one = make_request(prompt_tokens=1, prefix_hashes=(0,))
    view = RouterView(0.0, (_prefill("prefill-0", 2000, {0}), _prefill("prefill-1", 1999, set())),
                      ())
    assert ROUTERS.create("prefix_aware", {}, CTX).choose_prefill(one, view) == Route("prefill-1")
    # weight 0.5, 2 blocks of 512 held: 1,812 - 512 = 1,300 = unit 1's 1,300 uncached: the tie
    # goes to fewer outstanding tokens
    two = make_request(prompt_tokens=4096, prefix_hashes=(7, 8, 9))
    view = RouterView(0.0, (_prefill("prefill-0", 1812, {7, 8}),
                            _prefill("prefill-1", 1300, {9})), ())
    assert ROUTERS.create("prefix_aware", {"weight": 0.5}, CTX).choose_prefill(
        two, view) == Route("prefill-1")


def test_prefix_aware_a_later_loaded_unit_wins_only_if_its_hit_beats_the_best() -> None:
    # a 4,096-token prompt fully held caches 4,095 tokens (the last one runs): behind an uncached
    # unit of cost 1,000, a unit of 5,094 outstanding costs 999 and wins, one of 5,095 ties at
    # 1,000 and loses on outstanding tokens, one of 5,096 costs 1,001 and loses
    request = make_request(prompt_tokens=4096, prefix_hashes=tuple(range(8)))
    policy = ROUTERS.create("prefix_aware", {}, CTX)
    for outstanding, chosen in ((5094, "prefill-2"), (5095, "prefill-0"), (5096, "prefill-0")):
        view = RouterView(0.0, (_prefill("prefill-0", 1000, set()),
                                _prefill("prefill-1", 3000, {0}),  # 3,000 - 512
                                _prefill("prefill-2", outstanding, set(range(8)))), ())
        assert policy.choose_prefill(request, view) == Route(chosen), outstanding
    # weight 0.5: 4,095 tokens take 2,047.5 off; 3,047 outstanding costs 999.5 and wins
    half = ROUTERS.create("prefix_aware", {"weight": 0.5}, CTX)
    view = RouterView(0.0, (_prefill("prefill-0", 1000, set()),
                            _prefill("prefill-1", 3047, set(range(8)))), ())
    assert half.choose_prefill(request, view) == Route("prefill-1")


def test_prefix_overlap_counts_leading_blocks_only() -> None:
    request = make_request(prompt_tokens=4096, prefix_hashes=tuple(range(8)))
    view = RouterView(0.0, (_prefill("prefill-0", 500, set(range(1, 8))),  # misses block 0
                            _prefill("prefill-1", 400, set())), ())
    assert ROUTERS.create("prefix_aware", {"weight": 10}, CTX).choose_prefill(
        request, view) == Route("prefill-1")


def test_kv_aware_prefers_the_decode_unit_holding_the_conversation() -> None:
    request = make_request(prompt_tokens=2048, prefix_hashes=(1, 2, 3, 4))
    roomy = UnitView("decode-0", "decode", kv_capacity_bytes=1e12)
    holding = UnitView("decode-1", "decode", kv_used_bytes=5e11, kv_capacity_bytes=1e12,
                       cached_blocks=frozenset({1, 2}))
    view = RouterView(0.0, (), (roomy, holding))
    kv_aware = ROUTERS.create("kv_aware", {}, CTX)
    assert kv_aware.choose_decode(request, view) == Route("decode-1")
    # without hashes (or with no overlap anywhere) the headroom rule decides
    assert kv_aware.choose_decode(make_request(prompt_tokens=2048), view) == Route("decode-0")


def test_kv_aware_ties_on_the_conversation_go_to_headroom_then_batch_then_name() -> None:
    # decode-0 holds 1 leading block, decode-1..3 hold 2: among these, the most KV free wins;
    # equal KV free: the smaller batch; equal batch too: the last name (max of the key)
    request = make_request(prompt_tokens=2048, prefix_hashes=(1, 2, 3, 4))

    def unit(name: str, used: float, running: int, blocks: set[int]) -> UnitView:
        return UnitView(name, "decode", running_requests=running, kv_used_bytes=used,
                        kv_capacity_bytes=1e12, cached_blocks=frozenset(blocks))

    kv_aware = ROUTERS.create("kv_aware", {}, CTX)
    for units, chosen in (
        ((unit("decode-0", 0.0, 0, {1}), unit("decode-1", 3e11, 0, {1, 2}),
          unit("decode-2", 2e11, 5, {1, 2}), unit("decode-3", 4e11, 0, {1, 2, 4})), "decode-2"),
        ((unit("decode-0", 0.0, 0, {1}), unit("decode-1", 2e11, 3, {1, 2}),
          unit("decode-2", 2e11, 2, {1, 2}), unit("decode-3", 2e11, 4, {1, 2})), "decode-2"),
        ((unit("decode-0", 0.0, 0, {1}), unit("decode-1", 2e11, 2, {1, 2}),
          unit("decode-2", 2e11, 2, {1, 2}), unit("decode-3", 2e11, 3, {1, 2})), "decode-2"),
    ):
        assert kv_aware.choose_decode(request, RouterView(0.0, (), units)) == Route(chosen)


# -- decode-kept KV and the transfer option, end to end -----------------------------------------


def _two_turns(tmp_path: Path, transfer: str) -> dict:
    """Turn 2 repeats turn 1's four blocks and adds two; one decode unit keeps turn 1's KV."""
    path = _write(tmp_path / "conv.jsonl", [
        {"timestamp": 0, "input_length": 2048, "output_length": 3, "hash_ids": [1, 2, 3, 4]},
        {"timestamp": 5000, "input_length": 3072, "output_length": 3,
         "hash_ids": [1, 2, 3, 4, 5, 6]},
    ])
    exp = experiment_from_dict(experiment_dict(
        experiment__duration_s=30.0, workload={"kind": "trace", "path": str(path),
                                               "format": "mooncake"},
        policies={"router": "kv_aware"},
        prefix_cache={"enabled": True, "decode_keep": True, "transfer": transfer}))
    return {"exp": exp, "result": run_experiment(exp)}


def test_only_missing_blocks_cross_the_fabric(tmp_path) -> None:
    out = _two_turns(tmp_path, "missing")
    model = out["exp"].model
    moved = [t["modeled_bytes"] for t in out["result"].tables["transfers"].to_pylist()]
    assert moved == pytest.approx([kv_bytes(2048, model),
                                   kv_bytes(3072, model) - kv_bytes(2048, model)])
    s = out["result"].summary
    assert s["decode_kv_reused_bytes"] == pytest.approx(kv_bytes(2048, model))
    assert s["decode_kv_by_unit"]["decode-0"]["hit_blocks"] == 4
    assert s["decode_kv_by_unit"]["decode-0"]["reuse_shortfall_blocks"] == 0
    full = _two_turns(tmp_path, "full")["result"].tables["transfers"].to_pylist()
    assert [t["modeled_bytes"] for t in full] == pytest.approx([kv_bytes(2048, model),
                                                               kv_bytes(3072, model)])


def test_multi_turn_users_hit_their_caches_and_bytes_are_conserved() -> None:
    exp = experiment_from_dict(experiment_dict(
        experiment__duration_s=20.0, decode__units=2,
        workload={"kind": "closed_loop", "users": 6, "think_time_s": 0.5, "multi_turn": True,
                  "prompt_tokens": {"kind": "fixed", "value": 600},
                  "output_tokens": {"kind": "fixed", "value": 50}},
        policies={"router": "prefix_aware"},
        prefix_cache={"enabled": True, "decode_keep": True, "transfer": "missing"}))
    result = run_experiment(exp)
    rows = result.tables["requests"].to_pylist()
    prefilled = [r for r in rows if r["cached_tokens"] is not None]
    assert len(prefilled) > 30
    assert all(0 <= r["cached_tokens"] < r["prompt_tokens"] for r in prefilled)
    s = result.summary
    assert s["prefix_hit_rate"] > 0.3  # every turn after the first repeats the conversation
    assert s["decode_kv_reused_bytes"] > 0
    # every prompt's KV either crossed the fabric or was already held by its decode unit
    moved = sum(t["modeled_bytes"] for t in result.tables["transfers"].to_pylist())
    assert moved + s["decode_kv_reused_bytes"] == pytest.approx(
        sum(r["kv_bytes"] for r in rows if r["transfer_end_s"] is not None), rel=1e-9)

"""Prefix caching: the block cache, the cached-token prefill cost, and prefill units on a
hand-built Mooncake trace (virtual engine)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from conftest import experiment_dict
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.prefix_cache import (
    HeldBlocks,
    PrefixCache,
    cached_prefix_tokens,
    leading_overlap,
    with_blocks,
)
from disagg.experiments.run import run_experiment
from disagg.experiments.view.console import summary_table

# -- the cache --------------------------------------------------------------------------------


def test_leading_blocks_only_count() -> None:
    c = PrefixCache(10)
    c.insert([1, 2, 3])
    assert c.lookup([1, 2, 9, 3]) == 2  # block 3 after a miss cannot be reused
    assert c.lookup([7, 1]) == 0
    s = c.stats()
    assert (s.lookup_blocks, s.hit_blocks, s.inserted_blocks) == (6, 2, 3)
    assert s.hit_rate == pytest.approx(2 / 6)


def test_lru_evicts_least_recently_used_at_tiny_capacity() -> None:
    c = PrefixCache(3)
    c.insert([1, 2, 3])
    assert c.lookup([1]) == 1  # 1 is now the most recently used
    c.insert([4, 5])  # evicts 2, then 3
    assert c.blocks() == frozenset({1, 4, 5})
    assert c.stats().evicted_blocks == 2


def test_a_requests_tail_blocks_are_evicted_before_its_head() -> None:
    c = PrefixCache(4)
    c.insert([1, 2, 3, 4])
    c.insert([9])
    assert c.blocks() == frozenset({1, 2, 3, 9})  # 4 goes: without 1-3 it is useless anyway


def test_an_id_repeated_in_one_insert_counts_once_and_takes_its_first_place() -> None:
    c = PrefixCache(3)
    c.insert([1, 2, 1])  # by hand: 1, then 2, then 1 again -> oldest first: 2, 1 (2 blocks)
    assert c.stats().inserted_blocks == 2
    c.insert([3, 4])  # 4 then 3 go to the end: 2 (the oldest) is evicted
    assert c.blocks() == frozenset({1, 3, 4})
    assert c.changes().added == {1, 3, 4}


def test_fifo_evicts_oldest_inserted() -> None:
    c = PrefixCache(3, "fifo")
    c.insert([1, 2, 3])
    c.insert([7])  # evicts 3, A's tail
    assert c.lookup([1]) == 1  # a hit does not protect a block under FIFO
    c.insert([8, 9])  # evicts 2, then 1
    assert c.blocks() == frozenset({7, 8, 9})


def test_zero_capacity_holds_nothing_and_resize_evicts() -> None:
    c = PrefixCache(0)
    c.insert([1, 2])
    assert len(c) == 0
    c = PrefixCache(4)
    c.insert([1, 2, 3, 4])
    c.resize(1)
    assert c.blocks() == frozenset({1})
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_cached_tokens_leave_one_token_to_compute() -> None:
    assert cached_prefix_tokens(3000, 3) == 1536
    assert cached_prefix_tokens(1024, 2) == 1023  # a full hit still runs the last token
    assert cached_prefix_tokens(100, 0) == 0


# -- the performance model --------------------------------------------------------------------


def _by_hand_prefill_s(exp, prompts: list[int], cached: list[int]) -> float:
    """Calibration.md's prefill roofline written out for one batch: linear 2 N (S - C),
    attention 2 L n_q d (S^2 - C^2); memory moves the weights and the whole context's KV; per
    layer a fixed launch cost, a collective latency x log2(chips), and two ring all-reduces of the
    computed tokens' activations (docs/calibration.md)."""
    m, hw, chips = exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit
    peak = hw.peak_flops_fp8 if m.weight_bytes_per_param <= 1 else hw.peak_flops_bf16
    flops = sum(2 * m.active_params * (s - c) + 2 * m.layers * m.q_heads * m.head_dim
                * (s**2 - c**2) for s, c in zip(prompts, cached, strict=True))
    compute = flops / (chips * peak * hw.compute_efficiency)
    kv = m.kv_bytes_per_token_per_layer * m.layers * sum(prompts)  # llama: no sliding windows
    memory = (m.weight_bytes + kv) / (chips * hw.memory_bandwidth_bytes_per_s
                                      * hw.memory_efficiency)
    computed = sum(prompts) - sum(cached)
    ring = m.layers * 4 * (chips - 1) / chips * computed * m.hidden_size * hw.activation_bytes \
        / hw.interconnect_bytes_per_s
    fixed = m.layers * (hw.layer_overhead_s + hw.tp_layer_latency_s * math.log2(chips))
    return max(compute, memory) + hw.step_overhead_s + fixed + ring


def test_prefill_time_charges_uncached_tokens_only() -> None:
    exp = experiment_from_dict(experiment_dict())
    m, hw = exp.model, exp.prefill.hardware
    assert m.sliding_window_layers == 0
    got = prefill_time([3000, 2048], m, hw, 4, cached_tokens=[1536, 0]).seconds
    assert got == pytest.approx(_by_hand_prefill_s(exp, [3000, 2048], [1536, 0]), rel=1e-12)
    assert prefill_time([3000], m, hw, 4, cached_tokens=[0]) == prefill_time([3000], m, hw, 4)
    with pytest.raises(ValueError):
        prefill_time([100], m, hw, 4, cached_tokens=[101])


# -- prefill units on a hand-built trace ------------------------------------------------------


def _trace(path: Path, rows: list[tuple[int, int, int, list[int]]]) -> str:
    """A Mooncake JSONL file: (timestamp ms, input, output, hash_ids) per line."""
    path.write_text("".join(json.dumps({"timestamp": ts, "input_length": n_in,
                                        "output_length": n_out, "hash_ids": ids}) + "\n"
                            for ts, n_in, n_out, ids in rows))
    return str(path)


def _exp(trace: str, **cache):
    return experiment_from_dict(experiment_dict(
        experiment__duration_s=30.0, prefill__units=1,
        workload={"kind": "trace", "path": trace, "format": "mooncake"},
        prefix_cache={"enabled": True, **cache},
    ))


def test_second_request_sharing_k_blocks_is_charged_for_uncached_tokens(tmp_path) -> None:
    # A: 2,048 tokens = blocks 1-4. B, 10 s later: 3,000 tokens = 6 blocks, sharing k = 3.
    trace = _trace(tmp_path / "t.jsonl", [(0, 2048, 4, [1, 2, 3, 4]),
                                          (10_000, 3000, 4, [1, 2, 3, 5, 6, 7])])
    exp = _exp(trace)
    result = run_experiment(exp)
    a, b = result.tables["requests"].to_pylist()
    assert (a["cached_tokens"], b["cached_tokens"]) == (0, 3 * 512)
    assert b["first_token_s"] - b["prefill_start_s"] == pytest.approx(
        _by_hand_prefill_s(exp, [3000], [1536]), rel=1e-12)
    assert a["first_token_s"] - a["prefill_start_s"] == pytest.approx(
        _by_hand_prefill_s(exp, [2048], [0]), rel=1e-12)
    unit = result.summary["prefix_cache_by_unit"]["prefill-0"]
    assert (unit["hit_blocks"], unit["lookup_blocks"]) == (3, 10)
    assert result.summary["prefix_hit_rate"] == pytest.approx(0.3)
    assert result.summary["cached_token_share"] == pytest.approx(1536 / 5048)
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(summary_table(result.summary))
    assert "hit 30.0 % of blocks, 30.4 % of prompt tokens cached" in console.export_text()


def test_eviction_at_tiny_capacity_loses_the_hit(tmp_path) -> None:
    # capacity 4 blocks: C's four blocks evict all of A's
    trace = _trace(tmp_path / "t.jsonl", [(0, 2048, 4, [1, 2, 3, 4]),
                                          (5_000, 2048, 4, [8, 9, 10, 11]),
                                          (10_000, 3000, 4, [1, 2, 3, 5, 6, 7])])
    result = run_experiment(_exp(trace, capacity_blocks=4))
    rows = result.tables["requests"].to_pylist()
    assert [r["cached_tokens"] for r in rows] == [0, 0, 0]
    unit = result.summary["prefix_cache_by_unit"]["prefill-0"]
    assert unit["capacity_blocks"] == 4
    # C evicts A's four; B's six new blocks join C's four: six go (C's, then B's tail 7, 6)
    assert unit["evicted_blocks"] == 4 + 6
    roomy = run_experiment(_exp(trace, capacity_blocks=100)).tables["requests"].to_pylist()
    assert roomy[2]["cached_tokens"] == 1536


def test_caching_off_adds_no_column_or_key(tmp_path) -> None:
    trace = _trace(tmp_path / "t.jsonl", [(0, 2048, 4, [1, 2, 3, 4]),
                                          (1_000, 2048, 4, [1, 2, 3, 4])])
    exp = experiment_from_dict(experiment_dict(
        experiment__duration_s=30.0,
        workload={"kind": "trace", "path": trace, "format": "mooncake"}))
    result = run_experiment(exp)
    assert "cached_tokens" not in result.tables["requests"].column_names
    assert "prefix_hit_rate" not in result.summary


def test_transfer_missing_needs_decode_keep() -> None:
    with pytest.raises(ConfigError, match="decode_keep"):
        experiment_from_dict(experiment_dict(prefix_cache={"transfer": "missing"}))


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(0, 6), eviction=st.sampled_from(["lru", "fifo"]),
       prompts=st.lists(st.lists(st.integers(0, 12), max_size=8), max_size=30))
def test_cache_never_exceeds_capacity_and_conserves_blocks(capacity, eviction, prompts) -> None:
    c = PrefixCache(capacity, eviction)
    for hashes in prompts:
        hits = c.lookup(hashes)
        assert hits == c.leading_hits(hashes) and 0 <= hits <= len(hashes)
        c.insert(hashes)
        assert len(c) <= capacity
        s = c.stats()
        assert s.inserted_blocks - s.evicted_blocks == len(c)
        assert s.hit_blocks <= s.lookup_blocks


def test_held_blocks_extend_a_reported_set_without_copying_it() -> None:
    reported = frozenset({1, 2, 3})
    assert with_blocks(reported, [1, 3]) is reported  # nothing new: the same set
    held = with_blocks(reported, [3, 4, 5])
    assert isinstance(held, HeldBlocks) and held.base is reported
    assert held == frozenset({1, 2, 3, 4, 5}) and len(held) == 5
    assert hash(held) == hash(frozenset({1, 2, 3, 4, 5}))
    again = with_blocks(held, [5, 6])
    assert again == {1, 2, 3, 4, 5, 6} and 7 not in again and held == {1, 2, 3, 4, 5}
    assert leading_overlap([1, 2, 6, 9, 4], again) == 3

"""Prefix caching on the ray engine: the units' load reports carry their cache snapshots across
processes (pickled as plain frozensets), and the router routes by them."""

from __future__ import annotations

import json

import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.hardware.perf import kv_bytes
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_reported_blocks_route_the_next_turn_to_its_caches(ray_cluster, tmp_path) -> None:
    # A and C arrive together: C goes to the other prefill unit (A's tokens queue on the first).
    # B, 1.5 emu s later, starts with C's two blocks: only the reports of the unit that
    # prefilled C (and of the decode unit that kept C's KV) say where they are.
    path = tmp_path / "conv.jsonl"
    rows = [(0, 2048, [1, 2, 3, 4]), (0, 1024, [8, 9]), (1500, 1536, [8, 9, 10])]
    path.write_text("".join(json.dumps({"timestamp": ts, "input_length": n, "output_length": 3,
                                        "hash_ids": ids}) + "\n" for ts, n, ids in rows))
    exp = experiment_from_dict(experiment_dict(
        experiment__duration_s=3.0, experiment__engine="ray", experiment__dilation=2.0,
        prefill__units=2, decode__units=2,
        workload={"kind": "trace", "path": str(path), "format": "mooncake"},
        policies={"router": "prefix_aware"},
        prefix_cache={"enabled": True, "decode_keep": True, "transfer": "missing"}))
    result = run_experiment(exp, tmp_path / "out")
    a, c, b = sorted(result.tables["requests"].to_pylist(), key=lambda r: r["request_id"])
    assert all(r["status"] == "completed" for r in (a, b, c))
    assert a["prefill_unit"] != c["prefill_unit"]
    assert (b["prefill_unit"], b["cached_tokens"]) == (c["prefill_unit"], 1024)
    assert b["decode_unit"] == c["decode_unit"]
    assert result.summary["decode_kv_reused_bytes"] == pytest.approx(kv_bytes(1024, exp.model))

"""A shortened docs/claims.md comparison end to end on the virtual engine: the five clusters at
equal cost on 5 s of the Azure conversation trace, and the CS-3 concurrency assumption."""

from __future__ import annotations

import pytest

from disagg.cluster.hardware.perf import decode_step_time
from disagg.experiments.compare.claims import (
    load_clusters,
    run_claims,
    to_markdown,
    with_concurrency,
)
from disagg.experiments.compare.lineup import budget, line_up


def test_short_comparison_runs_all_five_clusters_at_equal_cost() -> None:
    rows = run_claims("azure", "cost", [7.0], [1.0, None], duration_s=5.0)
    names = [r.cluster for r in rows]
    assert names == ["aws_cerebras_vs_gpu", "aws_cerebras_vs_gpu", "trn3_cs3", "trn3_cs3",
                     "h100_colocated", "h100_disagg", "b200_colocated"]
    by = {(r.cluster, r.exponent): r.figures for r in rows}
    assert all(f["tok_s"] and f["tok_s"] > 0 for f in by.values())
    # per-user speed: CS-3 fitted to its plain launch figure (450 tok/s for a 70B on 4 wafers,
    # issue 23; it was 2,100, a speculative figure) against H100 TP8 (~66-125): > 2x, not > 10x
    assert by[("aws_cerebras_vs_gpu", "default")]["user_tok_s"] > 2 * by[
        ("h100_colocated", "-")]["user_tok_s"]
    assert by[("h100_colocated", "-")]["fast_tok_s"] == 0
    assert "| h100_colocated | 13 colocated |" in to_markdown(rows)


def test_no_cluster_spends_more_than_the_reference_and_mooncake_runs() -> None:
    clusters = load_clusters("azure", 5.0)
    ref = budget(clusters[0], "cost")
    lined = line_up(clusters, "cost", [c.experiment.name for c in clusters])
    assert all(c.budget is not None and c.budget <= ref * (1 + 1e-12) for c in lined)
    assert lined[2].units == {"colocated": 13}  # $527.52/h // $39.33/h per 8 x H100 server
    rows = run_claims("mooncake", "cost", [2.0], [None], duration_s=10.0)
    assert len(rows) == 5 and all(r.figures["tok_s"] > 0 for r in rows)


def test_exponent_one_shares_the_pipeline_between_streams() -> None:
    """Exponent 1: the latency floor grows with the streams, so 8 streams take ~8 times one."""
    exp = with_concurrency(load_clusters("azure", 5.0)[0], 1.0)
    cs3 = exp.pools["decode"].hardware
    assert cs3.concurrency_exponent == 1.0
    one, eight = (decode_step_time(b, 1000 * b, exp.model, cs3, 4) for b in (1, 8))
    assert eight == pytest.approx(8 * one, rel=0.05)

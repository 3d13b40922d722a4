"""A shortened docs/claims.md comparison end to end on the virtual engine: the five clusters at
equal cost on 5 s of the Azure conversation trace, and the CS-3 concurrency knee."""

from __future__ import annotations

import pytest

from disagg.cluster.hardware.perf import decode_step_time
from disagg.experiments.compare.claims import (
    knee_efficiency,
    load_clusters,
    run_claims,
    to_markdown,
    with_knee,
)
from disagg.experiments.compare.lineup import budget, line_up


def test_short_comparison_runs_all_five_clusters_at_equal_cost() -> None:
    rows = run_claims("azure", "cost", [7.0], [8, None], duration_s=5.0)
    names = [r.cluster for r in rows]
    assert names == ["aws_cerebras_vs_gpu", "aws_cerebras_vs_gpu", "trn3_cs3", "trn3_cs3",
                     "h100_colocated", "h100_disagg", "b200_colocated"]
    by = {(r.cluster, r.knee): r.figures for r in rows}
    assert all(f["tok_s"] and f["tok_s"] > 0 for f in by.values())
    # per-user speed: CS-3's fitted ~2,100 tok/s against the H100 TP8 bandwidth roofline (~125)
    assert by[("aws_cerebras_vs_gpu", "default")]["user_tok_s"] > 10 * by[
        ("h100_colocated", "default")]["user_tok_s"]
    assert by[("h100_colocated", "default")]["fast_tok_s"] == 0
    assert "| h100_colocated | 14 colocated |" in to_markdown(rows)


def test_no_cluster_spends_more_than_the_reference_and_mooncake_runs() -> None:
    clusters = load_clusters("azure", 5.0)
    ref = budget(clusters[0], "cost")
    lined = line_up(clusters, "cost", [c.experiment.name for c in clusters])
    assert all(c.budget is not None and c.budget <= ref * (1 + 1e-12) for c in lined)
    assert lined[2].units == {"colocated": 14}  # $551.52/h // $39.33/h per 8 x H100 server
    rows = run_claims("mooncake", "cost", [2.0], [None], duration_s=10.0)
    assert len(rows) == 5 and all(r.figures["tok_s"] > 0 for r in rows)


def test_knee_puts_the_compute_bound_at_that_many_streams() -> None:
    exp = load_clusters("azure", 5.0)[0]
    pool = exp.pools["decode"]
    assert knee_efficiency(exp.model, pool, 8) > 0
    slow = with_knee(exp, 8).pools["decode"]
    step = [decode_step_time(b, 1000 * b, exp.model, slow.hardware, 4) for b in (1, 8, 16)]
    # flat up to the knee (attention FLOPs of 1,000-token contexts add a little), then ~ doubles
    assert step[1] == pytest.approx(step[0], rel=0.15)
    assert step[2] == pytest.approx(2 * step[1], rel=0.15)

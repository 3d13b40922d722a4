"""``compare`` on the shared Ray fixture: virtual runs as Ray tasks give the same results as local
runs; ray-engine runs go one after another and write the same folders."""

from __future__ import annotations

import json

import pytest
from conftest import make_experiment

from disagg.actors.engines.parallel import map_virtual_runs
from disagg.experiments.compare.runs import compare, parse_policies, plan_runs
from disagg.experiments.run import assemble

pytestmark = pytest.mark.ray
SAME_POLICY_TWICE = "round_robin,disagg.policies.router.RoundRobin"  # importable in Ray workers


def test_virtual_runs_as_ray_tasks_match_local_runs(ray_cluster, tmp_path) -> None:
    base = make_experiment(experiment__duration_s=4.0)
    plans = plan_runs(base, parse_policies(SAME_POLICY_TWICE), [4.0, 8.0], 1)
    finished: list[int] = []
    remote = map_virtual_runs([p.experiment for p in plans], use_ray=True,
                              on_done=lambda i, _raw: finished.append(i))
    local = map_virtual_runs([p.experiment for p in plans], use_ray=False)
    assert sorted(finished) == list(range(len(plans)))
    for plan, a, b in zip(plans, remote, local, strict=True):
        sa, sb = (assemble(plan.experiment, raw).summary for raw in (a, b))
        assert sa == sb
    report = compare(base, plans, tmp_path / "cmp", use_ray=True)
    rows = {(r["policy"], r["rate_per_s"]): r for r in report.rows}
    for rate in (4.0, 8.0):  # the same policy under two names sees the same stream: same results
        a, b = rows[("round_robin", rate)], rows[("disagg.policies.router.RoundRobin", rate)]
        assert a["mean_ttft_ms"] == b["mean_ttft_ms"] and a["submitted"] == b["submitted"] > 5


def test_ray_engine_runs_one_after_another(ray_cluster, tmp_path) -> None:
    base = make_experiment(experiment__duration_s=2.0, experiment__dilation=0.5)
    plans = plan_runs(base, parse_policies(SAME_POLICY_TWICE), None, 1, engine="ray")
    from rich.console import Console

    from disagg.experiments.cli.compare import CompareProgress

    console = Console(record=True, width=120, force_terminal=False)
    with CompareProgress(console, len(plans)) as progress:
        compare(base, plans, tmp_path / "cmp", progress=progress, live=progress.live_run)
    shown = console.export_text()
    assert "run 2/2 done" in shown and "\x1b[" not in shown
    for plan in plans:
        summary = json.loads((tmp_path / "cmp" / plan.rel_dir / "summary.json").read_text())
        assert summary["engine"] == "ray" and summary["submitted"] > 0
        assert summary["completed"] == summary["submitted"]
    assert (tmp_path / "cmp" / "report.html").exists()

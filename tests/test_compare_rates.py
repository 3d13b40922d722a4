"""Issue 25 item 2: comparisons of workloads that bring their own arrivals (a trace at its speed,
a closed loop) report the rate offered, not 0, and a capacity that is not 0 at full attainment;
router regret never exceeds the TTFT it claims to shorten; a line-up's report says what was lined
up and at what budget."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.cluster.config import load_experiment
from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.cli.main import main
from disagg.experiments.compare.data import capacity, offered_rate_per_s
from disagg.experiments.compare.regret import request_regrets_s
from disagg.experiments.compare.runs import compare, parse_policies, plan_runs

ROOT = Path(__file__).resolve().parents[1] / "experiments"


def test_offered_rate_by_hand() -> None:
    assert offered_rate_per_s(5.0, [0.0, 9.0], 10.0) == 5.0  # a set rate is the offered rate
    assert offered_rate_per_s(0.0, [1.0, 2.0, 3.0, 5.0], 10.0) == pytest.approx(4 / 4.0)
    assert offered_rate_per_s(0.0, [3.0], 10.0) == pytest.approx(0.1)  # one request in 10 s


def test_capacity_without_a_sweep_is_the_offered_rate_met() -> None:
    rows = [{"policy": "a", "rate_per_s": 3.2, "repeat": k, "slo_attainment": att,
             "offered_rate_per_s": off} for k, (att, off) in enumerate([(1.0, 3.0), (0.96, 3.5)])]
    rows += [{"policy": "b", "rate_per_s": 3.2, "repeat": 0, "slo_attainment": 0.5,
              "offered_rate_per_s": 3.2}]
    assert capacity(rows) == {"a": pytest.approx(3.25), "b": None}


def _arrivals_span_rate(requests: str) -> float:
    """Requests / (last arrival - first arrival), read straight from a run's requests.parquet."""
    arr = sorted(pq.read_table(requests, columns=["arrival_s"]).column("arrival_s").to_pylist())
    return len(arr) / (arr[-1] - arr[0])


@pytest.mark.parametrize("toml", ["azure_conv.toml", "closed_loop_chat.toml"])
def test_own_arrivals_are_offered_their_mean_rate(tmp_path: Path, toml: str) -> None:
    exp = load_experiment(ROOT / toml, {"experiment.engine": "virtual", "experiment.duration_s": 6.0,
                                        "prefill.units": 6, "decode.units": 2})
    if toml == "closed_loop_chat.toml":
        exp = load_experiment(ROOT / toml, {"experiment.engine": "virtual",
                                            "experiment.duration_s": 6.0, "workload.users": 2,
                                            "prefill.units": 4})
    report = compare(exp, plan_runs(exp, parse_policies("round_robin,least_loaded"), None, 1),
                     tmp_path / "c", use_ray=False)
    assert report is not None
    table = pq.read_table(tmp_path / "c" / "comparison.parquet").to_pylist()
    for row in table:
        own = _arrivals_span_rate(str(tmp_path / "c" / row["run_dir"] / "requests.parquet"))
        assert row["offered_rate_per_s"] == pytest.approx(own)
        assert row["rate_per_s"] == pytest.approx(sum(r["offered_rate_per_s"] for r in table)
                                                  / len(table))
        cap = report.capacity[row["policy"]]
        if row["slo_attainment"] >= 0.9:
            assert cap == pytest.approx(row["offered_rate_per_s"]) and cap > 0
        else:
            assert cap is None
    md = (tmp_path / "c" / "report.md").read_text()
    assert "the workload's own arrivals" in md and "| 0 |" not in md
    assert "0 req/s" not in md.replace("10 req/s", "")


def test_a_light_closed_loop_meets_the_target_and_has_a_capacity(tmp_path: Path) -> None:
    exp = load_experiment(ROOT / "closed_loop_chat.toml", {
        "experiment.engine": "virtual", "experiment.duration_s": 6.0, "workload.users": 1,
        "workload.think_time_s": 1.0, "prefill.units": 2})
    report = compare(exp, plan_runs(exp, parse_policies("round_robin"), None, 1),
                     tmp_path / "c", use_ray=False)
    assert report is not None
    [row] = report.rows
    assert row["slo_attainment"] >= 0.9  # one user at a time: nothing queues
    assert row["offered_rate_per_s"] > 0
    assert report.capacity["round_robin"] == pytest.approx(row["offered_rate_per_s"])


ROW = st.tuples(st.sampled_from(["prefill-0", "prefill-1"]),
                st.floats(0, 10), st.floats(0, 5), st.floats(0.001, 3), st.integers(1, 8000))


@settings(max_examples=50, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=12))
def test_regret_never_exceeds_the_ttft(raw: list[tuple[str, float, float, float, int]]) -> None:
    """For any recorded schedule, consistent or not, regret is in [0, TTFT - own prefill time]."""
    exp = make_experiment()  # two prefill units
    rows = [{"request_id": i, "prefill_unit": u, "arrival_s": a, "prefill_start_s": a + wait,
             "first_token_s": a + wait + run, "prompt_tokens": tokens}
            for i, (u, a, wait, run, tokens) in enumerate(raw)]
    regrets = request_regrets_s(rows, exp)
    assert len(regrets) == len(rows)
    for r, regret in zip(rows, regrets, strict=True):
        ttft = r["first_token_s"] - r["arrival_s"]
        alone = prefill_time([r["prompt_tokens"]], exp.model, exp.prefill.hardware,
                             exp.prefill.chips_per_unit).seconds
        assert 0.0 <= regret <= max(0.0, ttft - alone) + 1e-9


def test_line_up_report_says_what_was_lined_up(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", str(ROOT / "gpu_baseline.toml"), str(ROOT / "gpu_colocated.toml"),
                 "--equal", "power", "--duration", "2", "--local", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert md.startswith("# Cluster line-up: gpu_baseline vs gpu_colocated")
    assert "router policies" not in md and "lined up at equal power" in md
    manifest = json.loads((out / "compare.json").read_text())
    for c in manifest["clusters"]:  # each cluster's units and budget, in both pages
        units = " | ".join(str(n) for n in c["units"].values())
        assert f"| {c['label']} | " in md and units in md
        assert f"{c['budget'] / 1e3:,.2f}" in md and f"{c['budget'] / 1e3:,.2f}" in html
    assert "<h2>Line-up</h2>" in html

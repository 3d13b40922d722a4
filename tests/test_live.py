"""The live view: state reports folded by the collector, and render(snapshot) as plain text."""

from __future__ import annotations

import asyncio
import io

import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from disagg.actors.components.collector import Collector
from disagg.actors.components.live_aggregate import LiveAggregator
from disagg.actors.components.live_state import LiveReporter, StateReport
from disagg.actors.engines.virtual import run_virtual
from disagg.experiments.run import assemble
from disagg.experiments.view.console import plain_progress
from disagg.experiments.view.live import MAX_ROWS, bar, histogram, render, sparkline
from disagg.experiments.view.runner import run_info


def _plain(renderable, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def _run_with_final_snapshot(exp):
    """Run on the virtual engine; fold every component's final state into the collector."""
    comps, reporters = {}, []

    def on_start(started):
        comps.update(started)
        reporters.extend(LiveReporter(c) for n, c in started.items() if n != "collector")

    raw = run_virtual(exp, on_start=on_start)
    collector: Collector = comps["collector"]  # type: ignore[assignment]
    for reporter in reporters:
        report = reporter.next_report()
        assert report is not None
        collector.deliver(report)
    snap = {"now_s": raw["end_s"], **collector.snapshot(), "run": run_info(exp)}
    return raw, snap


def _snapshots_at(exp, times_s):
    """Snapshots taken at the given emu times of a virtual run (reports folded just before)."""
    snaps = []

    def on_start(comps):
        collector = comps["collector"]
        reporters = [LiveReporter(c) for n, c in comps.items() if n != "collector"]

        def take():
            for reporter in reporters:
                report = reporter.next_report()
                if report is not None:
                    collector.deliver(report)
            snaps.append({"now_s": collector.clock.now(), **collector.snapshot(),
                          "run": run_info(exp)})

        loop = asyncio.get_running_loop()
        for t in times_s:
            loop.call_later(t, take)

    run_virtual(exp, on_start=on_start)
    return snaps


def test_small_cluster_renders_one_row_per_unit() -> None:
    exp = make_experiment()
    raw, snap = _run_with_final_snapshot(exp)
    text = _plain(render(snap))
    summary = assemble(exp, raw).summary
    for unit in ("prefill-0", "prefill-1", "decode-0"):
        assert unit in text
    assert "t · virtual engine · dilation 1" in text
    assert f"completed {summary['completed']}" in text
    assert f"arrived {summary['submitted']}/{summary['submitted']}" in text
    assert "KV used of capacity" in text and "34.9 GB" in text  # 4 x CS-3 less the weights
    assert "\x1b" not in text


def test_live_slo_figures_agree_with_the_results() -> None:
    exp = make_experiment(workload__rate_per_s=6.0)
    raw, snap = _run_with_final_snapshot(exp)
    result = assemble(exp, raw)
    rows = [r for r in result.tables["requests"].to_pylist() if r["status"] == "completed"]
    slo = snap["live"]["slo"]
    assert slo["window"] == len(rows) < 500
    assert slo["met"] == sum(r["slo_met"] for r in rows)
    ttfts = sorted(r["ttft_s"] for r in rows)
    assert slo["ttft_p50_s"] == pytest.approx(float(__import__("numpy").median(ttfts)))
    fabric = snap["live"]["fabric"]
    assert fabric["bytes_moved"] == pytest.approx(result.summary["fabric_bytes"])


def test_64_unit_pool_is_shown_as_aggregate_rows() -> None:
    exp = make_experiment(prefill__units=64, prefill__units_per_host=4, decode__units=2,
                          workload__rate_per_s=40.0, experiment__duration_s=2.0)
    _, snap = _snapshots_at(exp, [1.0, 1.5])
    prefill = snap["live"]["units"]["prefill"]
    assert len(prefill) == 64 > MAX_ROWS
    assert 0 < max(u["utilization"] for u in prefill) <= 1
    text = _plain(render(snap))
    assert "prefill pool — 64 units: min / median / max" in text
    assert "prefill-63" not in text and "prefill-0 " not in text
    assert "utilization %" in text and "queue depth" in text
    assert "decode-1" in text  # the small decode pool still has one row per unit
    assert "fabric links — 36 links" in text  # 16 prefill + 2 decode hosts, egress and ingress
    assert len(text.splitlines()) < 60


def test_render_before_any_report() -> None:
    text = _plain(render({"run": run_info(make_experiment()), "now_s": 0.0}))
    assert "prefill pool: no report yet" in text and "requests: submitted 0" in text


def _report(unit, t, finished=(), **state):
    kind, index = unit.rsplit("-", 1)  # test names follow the engine's <kind>-<index>
    return StateReport(unit, {"name": unit, "kind": kind, "index": int(index), **state},
                       tuple(finished), 0.0, t)


def test_aggregator_joins_first_and_last_tokens_in_any_order() -> None:
    agg = LiveAggregator()
    # request 1: ttft 0.5 s, 11 output tokens over 1.0 s -> tpot 0.1 s (misses a 0.05 s target)
    agg.add(_report("decode-0", 2.0, [("last", 1, 1.5, 11, 0.05)]))
    agg.add(_report("prefill-0", 2.0, [("first", 1, 0.0, 0.5, 1.0, 11),
                                       ("first", 2, 1.0, 1.2, 1.0, 1)]))  # one-token request
    slo = agg.snapshot(4.0)["slo"]
    assert slo["window"] == 2 and slo["met"] == 1
    assert slo["attainment"] == 0.5 and slo["goodput_per_s"] == 0.25
    assert slo["ttft_p99_s"] == pytest.approx(0.5 - 0.003 * 0.3, abs=0.01)


def test_a_first_fact_after_its_request_failed_is_dropped_not_kept() -> None:
    agg = LiveAggregator()
    agg.forget(7, first_made=True)  # no unit has reported: not a live run, nothing to wait for
    assert not agg._gone
    agg.add(_report("prefill-0", 1.0, [("first", 1, 0.0, 0.5, 1.0, 3)]))
    agg.forget(1, first_made=True)  # its first fact came before its end: dropped at once
    agg.forget(2, first_made=False)  # ended before its first token: no fact will come
    agg.forget(3, first_made=True)  # its first fact is still in a report on its way
    assert not agg._firsts and agg._gone == {3}
    agg.add(_report("prefill-0", 2.0, [("first", 3, 0.0, 1.5, 1.0, 3),
                                       ("first", 4, 1.0, 1.6, 1.0, 3)]))
    assert set(agg._firsts) == {4} and not agg._gone  # 3 left nothing behind; 4 still running
    assert agg.snapshot(2.0)["slo"]["window"] == 0


def test_rates_cover_recent_calls_and_fall_to_zero_when_idle() -> None:
    agg = LiveAggregator()
    agg.add(_report("prefill-0", 0.0, tokens_done=0, busy_s=0.0))
    agg.snapshot(0.0)
    agg.add(_report("prefill-0", 1.0, tokens_done=1000, busy_s=0.5))
    [unit] = agg.snapshot(1.0)["units"]["prefill"]
    assert unit["tokens_per_s"] == pytest.approx(1000.0) and unit["utilization"] == 0.5
    for t in (2.0, 3.0, 4.0, 5.0, 6.0):  # no more reports: nothing changed on the unit
        [unit] = agg.snapshot(t)["units"]["prefill"]
    assert unit["tokens_per_s"] == 0.0 and unit["utilization"] == 0.0
    assert agg.snapshot(7.0)["throughput"][-1] == 0.0


def test_reporter_sends_only_on_change() -> None:
    exp = make_experiment()
    comps = {}
    run_virtual(exp, on_start=comps.update)
    reporter = LiveReporter(comps["prefill-0"])
    assert reporter.next_report() is not None
    assert reporter.next_report() is None


def test_text_helpers() -> None:
    assert bar(0.5, 4) == "██░░" and bar(2.0, 3) == "███" and bar(-1, 2) == "░░"
    assert sparkline([0, 1, 2]) == "▁▅█" and sparkline([0, 0]) == "▁▁"
    assert histogram([1, 1, 1, 9], bins=2) == "█▃"


def test_plain_progress_prints_plain_lines() -> None:
    console = Console(record=True, width=100, file=io.StringIO())
    show = plain_progress(console, make_experiment(), every_s=0.0)
    show({"now_s": 1.5, "completed": 3, "rejected": 0, "failed": 1})
    text = console.export_text()
    assert "emu     1.5 s / 5 s arrivals · completed 3 · rejected 0 · failed 1" in text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0.01, 2), st.integers(1, 50),
                          st.floats(0.001, 0.2)), min_size=1, max_size=30),
       st.randoms(use_true_random=False), st.integers(1, 6))
def test_every_request_is_joined_exactly_once_in_any_order(reqs, rnd, n_reports) -> None:
    facts = []
    expected_met = 0
    for rid, (arrival, ttft, out_tokens, gap) in enumerate(reqs):
        first = arrival + ttft
        facts.append(("prefill-0", ("first", rid, arrival, first, 1.0, out_tokens)))
        if out_tokens > 1:
            facts.append(("decode-0", ("last", rid, first + gap * (out_tokens - 1), out_tokens,
                                       0.1)))
        expected_met += ttft <= 1.0 and (out_tokens <= 1 or gap <= 0.1)
    rnd.shuffle(facts)
    agg = LiveAggregator()
    for i in range(n_reports):
        for unit in ("prefill-0", "decode-0"):
            mine = [f for j, (u, f) in enumerate(facts) if u == unit and j % n_reports == i]
            agg.add(_report(unit, 10.0, mine))
    slo = agg.snapshot(10.0)["slo"]
    assert slo["window"] == len(reqs)
    assert abs(slo["met"] - expected_met) <= sum(  # float ties at the SLO boundary aside
        1 for _, t, _, g in reqs if abs(t - 1.0) < 1e-9 or abs(g - 0.1) < 1e-9)
    assert not agg._firsts and not agg._lasts


def test_colocated_pool_renders_its_units() -> None:
    from conftest import experiment_dict

    from disagg.cluster.config import experiment_from_dict

    raw_exp = experiment_dict()
    del raw_exp["prefill"], raw_exp["decode"]
    raw_exp["colocated"] = {"hardware": "h100", "chips_per_unit": 8, "units": 2}
    exp = experiment_from_dict(raw_exp)
    raw, snap = _run_with_final_snapshot(exp)
    text = _plain(render(snap))
    summary = assemble(exp, raw).summary
    assert "colocated pool (prefill + decode)" in text
    assert "colocated-0" in text and "colocated-1" in text and "prefill-0" not in text
    assert "decoding" in text and "prefilling" in text
    # 8 x 80 GB less Llama-70B's 141 GB of BF16 weights
    assert "498.9 GB" in text
    assert f"completed {summary['completed']}" in text

"""Issue 25 item 1: the live view fits the terminal (80 x 24, 120 x 40, 200 x 60) with what
matters first, its last frame agrees with the summary, and a start-up line shows while the engine
starts. Rendered as plain text into a capture console, as tests/test_live.py does."""

from __future__ import annotations

import io

import pytest
from conftest import make_experiment
from rich.console import Console
from test_live import _run_with_final_snapshot, _snapshots_at

from disagg.experiments.run import assemble
from disagg.experiments.view.live_frame import final_snapshot, fit
from disagg.experiments.view.runner import LiveDashboard, run_info

SIZES = [(80, 24), (120, 40), (200, 60)]
FIRST = ("emu ", "SLO attainment", "goodput", "TTFT p50", "TPOT p50", "requests: submitted",
         "decode throughput")  # in this order, before any pool


def _lines(renderable, width: int) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def _check_fits(snap: dict, width: int, rows: int) -> str:
    lines = _lines(fit(snap, width, rows), width)
    assert len(lines) <= rows - 1, "\n".join(lines)
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    where = [text.find(s) for s in FIRST]
    assert -1 not in where and where == sorted(where), text
    assert "fabric" in text and "prefill" in text and "decode" in text
    return text


@pytest.mark.parametrize(("width", "rows"), SIZES)
def test_four_plus_two_units_fit_with_what_matters_first(width: int, rows: int) -> None:
    exp = make_experiment(prefill__units=4, decode__units=2, workload__rate_per_s=8.0,
                          experiment__duration_s=3.0)
    _, snap = _snapshots_at(exp, [1.0, 1.5])
    text = _check_fits(snap, width, rows)
    assert all(f"prefill-{i}" in text for i in range(4)) and "decode-1" in text  # room for all
    assert ("prefill-host-0/egress" in text) == (rows >= 40)  # a row per link only with room


@pytest.mark.parametrize(("width", "rows"), SIZES)
def test_pools_are_one_line_each_when_their_rows_do_not_fit(width: int, rows: int) -> None:
    exp = make_experiment(prefill__units=12, decode__units=8, workload__rate_per_s=30.0,
                          experiment__duration_s=2.0)
    _, snap = _snapshots_at(exp, [1.0, 1.5])
    text = _check_fits(snap, width, rows)
    per_unit = "prefill-11" in text and "decode-7" in text
    assert per_unit == (rows >= 40)
    assert ("prefill: 12 units" in text and "decode: 8 units" in text) == (rows < 40)


@pytest.mark.parametrize(("width", "rows"), SIZES)
def test_64_units_fit_and_detail_grows_with_the_terminal(width: int, rows: int) -> None:
    exp = make_experiment(prefill__units=64, prefill__units_per_host=4, decode__units=2,
                          workload__rate_per_s=40.0, experiment__duration_s=2.0)
    _, snap = _snapshots_at(exp, [1.0, 1.5])
    text = _check_fits(snap, width, rows)
    assert "prefill pool — 64 units: min / median / max" in text  # 6 lines: fits even 80 x 24
    if rows >= 60:
        assert "fabric links — 36 links" in text
    if rows <= 24:
        assert "fabric: " in text and "36 links, busiest at" in text


def test_final_frame_equals_the_summary() -> None:
    exp = make_experiment(workload__rate_per_s=6.0)
    raw, snap = _run_with_final_snapshot(exp)
    summary = assemble(exp, raw).summary
    stale = {**snap, "completed": summary["completed"] - 1, "now_s": 1.0}  # an early last poll
    stale["live"]["units"]["decode"][0]["tokens_per_s"] = 992.0
    final = final_snapshot(stale, summary)
    text = "\n".join(_lines(fit(final, 120, 40), 120))
    assert (f"requests: submitted {summary['submitted']} · completed {summary['completed']} · "
            f"rejected {summary['rejected']} · failed {summary['failed']}") in text
    assert f"SLO attainment {100 * summary['slo_attainment']:.1f} % (the whole run)" in text
    assert f"goodput {summary['request_goodput']:,.2f} req/s" in text
    assert f"TTFT p50 {summary['median_ttft_ms']:,.1f} ms" in text
    assert "done" in text and "draining" not in text and "100 %" in text
    assert all(u["tokens_per_s"] == 0.0 for pool in final["live"]["units"].values() for u in pool)
    decode_rows = [line for line in text.splitlines()
                   if line.startswith("decode-") and "host" not in line]
    assert decode_rows and all(line.rstrip().endswith(" 0") for line in decode_rows)


@pytest.mark.parametrize("engine", ["ray", "virtual"])
def test_a_start_up_line_shows_until_the_first_report(engine: str) -> None:
    exp = make_experiment(experiment__engine=engine)
    console = Console(record=True, width=80, height=24, file=io.StringIO(), color_system=None,
                      force_terminal=True)
    dashboard = LiveDashboard(console, exp)
    text = "\n".join(_lines(dashboard._renderable(), 80))
    assert ("starting Ray…" in text) == (engine == "ray") and " s (the run starts once" in text
    dashboard({"now_s": 0.5, "run": run_info(exp)})
    assert "starting" not in "\n".join(_lines(dashboard._renderable(), 80))

"""``disagg compare`` and ``disagg report`` on the virtual engine: the files, the table against the
runs' own summaries, identical request streams, the plots, re-rendering, bad input, capacity."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tomli_w
from conftest import experiment_dict, make_experiment

from disagg.experiments.cli.main import main
from disagg.experiments.compare.capacity import bisect_capacity
from disagg.experiments.compare.data import capacity, load_runs, run_row, t_critical
from disagg.experiments.compare.report import PLOT_TITLES
from disagg.experiments.compare.runs import (
    parse_policies,
    plan_runs,
    run_plans,
    variant,
)
from disagg.experiments.compare.table import COLUMNS, REGRET_COLUMNS

POLICIES = ["round_robin", "compare_policies.FirstUnit"]
RATES = [4.0, 10.0]
REPEATS = 2
RUN_FILES = ["config.toml", "requests.parquet", "run.json", "summary.json", "timeseries.parquet",
             "transfers.parquet"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_experiment(folder: Path, **overrides) -> Path:
    path = folder / "exp.toml"
    path.write_text(tomli_w.dumps(experiment_dict(**overrides)))
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, str]:
    """One small comparison through the CLI: 2 policies x 2 rates x 2 repeats, local runs."""
    folder = tmp_path_factory.mktemp("compare")
    exp = _write_experiment(folder, experiment__duration_s=4.0)
    out = folder / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["compare", str(exp), "--policies", ",".join(POLICIES), "--rates",
                     ",".join(f"{r:g}" for r in RATES), "--repeats", str(REPEATS), "--local",
                     "--out", str(out)])
    assert code == 0, buf.getvalue()
    return out, buf.getvalue()


def _run_dir(out: Path, policy: str, rate: float, repeat: int) -> Path:
    return out / "runs" / policy / f"rate-{rate:g}" / f"repeat-{repeat}"


def _summary(out: Path, policy: str, rate: float, repeat: int) -> dict:
    return json.loads((_run_dir(out, policy, rate, repeat) / "summary.json").read_text())


def test_compare_writes_the_report_folder_and_every_run(compared) -> None:
    out, printed = compared
    for name in ["compare.json", "comparison.parquet", "report.html", "report.md", "table.csv"]:
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(PLOT_TITLES)
    for policy in POLICIES:
        for rate in RATES:
            for k in range(REPEATS):
                d = _run_dir(out, policy, rate, k)
                assert sorted(p.name for p in d.iterdir()) == RUN_FILES
                meta = json.loads((d / "run.json").read_text())
                assert (meta["policy"], meta["rate_per_s"], meta["repeat"]) == (policy, rate, k)
                assert meta["seed"] == 7 + k == _summary(out, policy, rate, k)["seed"]
    assert not list(out.parent.glob(".out.*")), "temporary folders left behind"
    assert "run 8/8 done" in printed and "capacity" in printed and "TTFT p99 ms" in printed


def test_every_policy_sees_the_identical_request_stream(compared) -> None:
    out, _ = compared
    columns = ["request_id", "arrival_s", "prompt_tokens", "output_tokens"]
    for rate in RATES:
        streams = [[pq.read_table(_run_dir(out, p, rate, k) / "requests.parquet", columns=columns)
                    for p in POLICIES] for k in range(REPEATS)]
        for per_repeat in streams:
            assert per_repeat[0].num_rows > 5
            assert all(t.equals(per_repeat[0]) for t in per_repeat[1:])
        assert not streams[0][0].equals(streams[1][0]), "repeats must change the seed"


def test_comparison_parquet_has_one_row_per_run_with_the_summary_keys(compared) -> None:
    out, _ = compared
    rows = pq.read_table(out / "comparison.parquet").to_pylist()
    assert len(rows) == len(POLICIES) * len(RATES) * REPEATS
    assert len({(r["policy"], r["rate_per_s"], r["repeat"]) for r in rows}) == len(rows)
    for row in rows:
        summary = _summary(out, row["policy"], row["rate_per_s"], row["repeat"])
        for key, value in summary.items():
            expected = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
            assert row[key] == expected, key
        assert row["mean_regret_ms"] >= 0 and 0 <= row["regret_share"] <= 1


def test_table_values_equal_the_runs_own_summaries(compared) -> None:
    out, _ = compared
    lines = (out / "table.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 1 + len(POLICIES) * len(RATES)
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        rate = float(row["rate_per_s"])
        runs = [_summary(out, row["policy"], rate, k) for k in range(REPEATS)]
        assert int(row["n"]) == REPEATS
        for col in COLUMNS:
            values = [s[col.key] for s in runs]
            if any(v is None for v in values):
                assert row[f"{col.key}_mean"] == ""
                continue
            mean = sum(values) / REPEATS
            half = t_critical(REPEATS - 1) * abs(values[0] - values[1]) / 2  # s/sqrt(2) for n = 2
            assert float(row[f"{col.key}_mean"]) == pytest.approx(mean, rel=1e-12, abs=1e-12)
            assert float(row[f"{col.key}_ci95"]) == pytest.approx(half, rel=1e-9, abs=1e-12)
    md = (out / "report.md").read_text()
    s = [_summary(out, "round_robin", RATES[0], k) for k in range(REPEATS)]
    mean = (s[0]["p99_ttft_ms"] + s[1]["p99_ttft_ms"]) / 2
    assert f"{mean:,.1f} ± " in md


def test_best_value_per_column_is_marked(compared) -> None:
    out, _ = compared
    md = (out / "report.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith(("| round_robin |", f"| {POLICIES[1]} |")) and line.count("|") > 4]
    assert len(rows) == 2 * len(POLICIES) * len(RATES)  # the summary table, then the regret table
    summary = {(r[0], float(r[1])): r[2:] for r in rows[:len(POLICIES) * len(RATES)]}
    keys = [c.key for c in COLUMNS]
    for rate in RATES:
        for col, key in enumerate(keys):
            marks = [summary[(p, rate)][col].startswith("**") for p in POLICIES]
            if COLUMNS[col].better is None:
                assert not any(marks), key  # utilization: neither direction is better
    # at 10 req/s round-robin beats pinning every prefill to one unit on SLO attainment
    att = keys.index("slo_attainment")
    assert summary[("round_robin", 10.0)][att].startswith("**")
    assert not summary[(POLICIES[1], 10.0)][att].startswith("**")


def test_plots_are_non_empty_pngs_and_embedded_in_the_html(compared) -> None:
    out, _ = compared
    page = (out / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(PLOT_TITLES)
    for name, data in zip(PLOT_TITLES, embedded, strict=True):
        png = (out / "plots" / name).read_bytes()
        assert png[:8] == PNG_SIGNATURE and len(png) > 10_000, name
        width, height = struct.unpack(">II", png[16:24])
        assert width > 300 and height > 200, name
        assert base64.b64decode(data) == png
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_report_rerenders_from_saved_runs_without_running(compared, monkeypatch) -> None:
    out, _ = compared
    before = pq.read_table(out / "comparison.parquet")
    md = (out / "report.md").read_text()
    for name in ["report.md", "report.html", "comparison.parquet", "table.csv"]:
        (out / name).unlink()

    def refuse(*_args, **_kwargs):
        raise AssertionError("disagg report must not run anything")

    monkeypatch.setattr("disagg.actors.engines.virtual.run_virtual", refuse)
    monkeypatch.setattr("disagg.experiments.run.execute", refuse)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(out)]) == 0
    assert pq.read_table(out / "comparison.parquet").equals(before)
    assert (out / "report.md").read_text() == md
    assert (out / "report.html").stat().st_size > 0


@pytest.mark.parametrize("args, field", [
    (["--policies", "round_robin,nope_policy"], "--policies"),
    (["--policies", "round_robin:bogus=1"], "--policies"),
    (["--policies", "round_robin,round_robin"], "--policies"),
    (["--policies", "round_robin", "--rates", "2,-1"], "--rates"),
    (["--policies", "round_robin", "--rates", "fast"], "--rates"),
    (["--policies", "round_robin", "--repeats", "0"], "--repeats"),
])
def test_bad_input_exits_2_naming_the_flag_and_writes_nothing(tmp_path, capsys, args, field) -> None:
    exp = _write_experiment(tmp_path)
    out = tmp_path / "out"
    assert main(["compare", str(exp), *args, "--local", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"disagg: error: {field}") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]


def test_report_on_a_folder_without_runs_exits_2(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no runs found" in capsys.readouterr().err


def test_capacity_agrees_with_a_bisection_within_one_rate_step(tmp_path) -> None:
    step = 1.5
    rates = [1.5, 3.0, 4.5, 6.0, 7.5, 9.0]  # both policies break inside this range
    base = make_experiment(experiment__duration_s=10.0)
    choices = parse_policies(",".join(POLICIES))
    run_plans(plan_runs(base, choices, rates, 1), tmp_path, use_ray=False)
    swept = capacity([run_row(r, tmp_path) for r in load_runs(tmp_path)])
    for choice in choices:
        exp = variant(base, choice, rates[0], base.experiment.seed, "virtual")
        bisected = bisect_capacity(exp, rates[0], rates[-1], tol_per_s=step / 8)
        assert swept[choice.label] is not None and bisected is not None, (choice, swept, bisected)
        assert bisected < rates[-1], "the bisection must find a crossing, not the range's end"
        assert abs(swept[choice.label] - bisected) <= step, (choice, swept, bisected)
    assert swept["round_robin"] > swept[POLICIES[1]]


def test_report_states_the_capacity_it_computes(compared) -> None:
    out, _ = compared
    rows = pq.read_table(out / "comparison.parquet").to_pylist()
    md = (out / "report.md").read_text()
    for policy, cap in capacity(rows).items():
        shown = "below the lowest rate tested" if cap is None else f"{cap:g}"
        assert f"| {policy} | {shown} |" in md


def test_regret_columns_are_reported(compared) -> None:
    out, _ = compared
    md = (out / "report.md").read_text()
    assert all(c.label in md for c in REGRET_COLUMNS)

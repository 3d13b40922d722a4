"""benchmarks/vs_peers.py and peer_table.py (docs/performance.md's blocks ``vs-peers`` and
``vs-peers-interpreter``): the Dynamo driver, the completed requests read from each side's
report, the start-up slice, and the table. No network and no install: the driver runs against a
fake ``dynamo.replay`` written into a temporary folder (the installs: test_peer_venvs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchscripts import load_benchmark

bench = load_benchmark("vs_peers")
venvs = sys.modules["peer_venvs"]
sims = sys.modules["peer_sims"]
tbl = sys.modules["peer_table"]



def dynamo(name: str = "dynamo") -> Any:
    return next(p for p in sims.PEERS if p.name == name)


def test_a_python_that_is_no_executable_is_bad_input(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    assert bench.main(["--python", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == (f"--python: {tmp_path / 'none'} is not an executable "
                                       "file; give the path of a Python interpreter\n")


def test_an_unknown_peer_is_bad_input_before_anything_is_installed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert bench.main(["--peers", "dynamo,dynamo-k", "--cache", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == ("--peers: 'dynamo-k' is not a peer; allowed: dynamo, "
                                       "dynamo-kv, dynamo-files, vidur\n")
    assert not (tmp_path / "c").exists()


FAKE_DYNAMO = """\
import json, os
class Report:
    summary = {"completed_requests": 5, "num_requests": 6, "extra": object()}
class TelemetryOptions:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
def run_trace_replay(trace, **kwargs):
    with open(os.environ["CALLS"], "w") as f:
        json.dump({"trace": str(trace), "log": os.environ.get("DYN_LOG"), **kwargs}, f,
                  default=lambda o: {"TelemetryOptions": o.kwargs})
    return Report()
"""


@pytest.mark.parametrize(("name", "router", "files"), [
    ("dynamo", "round_robin", False), ("dynamo-kv", "kv_router", False),
    ("dynamo-files", "round_robin", True)])
def test_the_dynamo_driver_calls_the_replay_api_and_writes_its_summary(
        tmp_path: Path, name: str, router: str, files: bool) -> None:
    (tmp_path / "dynamo").mkdir()
    (tmp_path / "dynamo" / "__init__.py").write_text("")
    (tmp_path / "dynamo" / "replay.py").write_text(FAKE_DYNAMO)
    calls, trace = tmp_path / "calls.json", tmp_path / "trace.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "DYN_LOG"}
    env.update(PYTHONPATH=str(tmp_path), CALLS=str(calls))
    subprocess.run([sys.executable, *dynamo(name).command(trace, tmp_path)], env=env,
                   check=True, cwd=tmp_path)
    assert json.loads(calls.read_text()) == {
        "trace": str(trace), "log": "warn",  # its routing log (INFO, per request) left out
        "num_prefill_workers": 8, "num_decode_workers": 2, "router_mode": router,
        "prefill_engine_args": {"engine": {"block_size": 512, "worker_type": "prefill"}},
        "decode_engine_args": {"engine": {"block_size": 512, "worker_type": "decode"}},
        # only the files row asks for each request's record and the timeseries (JSON lines)
        **({} if not files else {
            "report_jsonl_path": str(tmp_path / "dynamo-requests.jsonl"),
            "telemetry_options": {"TelemetryOptions": {
                "sample_interval_ms": 500.0,
                "jsonl_path": str(tmp_path / "dynamo-timeseries.jsonl")}}})}
    summary = json.loads((tmp_path / dynamo(name).report).read_text())
    assert dynamo(name).completed(summary) == (5, 6)


def test_the_files_row_samples_on_the_grid_of_disaggs_run() -> None:
    from disagg.cluster.config import load_experiment
    assert sims.SAMPLE_INTERVAL_S == load_experiment(bench.EXPERIMENT).output.sample_interval_s


def test_every_dynamo_row_runs_from_one_venv() -> None:
    assert dynamo("dynamo-kv").venv == dynamo("dynamo-files").venv == "dynamo"
    assert not dynamo().venv
    reports = {dynamo(n).report for n in ("dynamo", "dynamo-kv", "dynamo-files")}
    assert len(reports) == 3  # one report each, read fresh


def test_a_side_reads_only_its_fresh_report(tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    write = f"import json; json.dump({{'completed': 7, 'submitted': 9}}, open({str(report)!r}, 'w'))"
    side = bench.Side("disagg", [sys.executable, "-c", write], report, bench.disagg_completed)
    assert bench.run_side(side, tmp_path).completed == (7, 9)
    failing = bench.Side("disagg", [sys.executable, "-c", "raise SystemExit(3)"], report,
                         bench.disagg_completed)
    t = bench.run_side(failing, tmp_path)  # the previous run's report is not read again
    assert t.completed is None and t.error == "exit 3: no stderr"
    assert not report.exists()


def test_disagg_setup_is_read_from_the_experiment(tmp_path: Path) -> None:
    toml = tmp_path / "x.toml"
    toml.write_text('[model]\nname = "m"\n[prefill]\nhardware = "h1"\nchips_per_unit = 2\n'
                    'units = 3\n[decode]\nhardware = "h2"\nchips_per_unit = 1\nunits = 1\n'
                    '[policies]\nrouter = { name = "round_robin" }\n')
    configuration, models = tbl.disagg_setup(toml)
    assert configuration == "`x.toml`: 3 prefill (2 × h1) + 1 decode (1 × h2) units, m"
    assert "router `round_robin`, no prefix caching" in models


def skipped_but(*ran: str) -> dict[str, str]:
    """Every peer not in ``ran`` left out, as ``--peers`` leaves them."""
    return {p.name: "left out (--peers)" for p in sims.PEERS if p.name not in ran}


def timing(wall: float, completed: tuple[int, int] | None = (12, 12)) -> Any:
    return tbl.Timing(wall, wall, 100.0, None, completed)


def test_the_table_gives_dynamo_wall_over_disagg_wall_from_the_same_rounds() -> None:
    results = {"disagg": [timing(4.0, (10, 12)), timing(6.0, (10, 12)), timing(5.0, (10, 12))],
               "dynamo": [timing(2.0), timing(3.0), timing(2.5)]}
    text = tbl.table(results, skipped_but("dynamo"), 3,
                       {"dynamo": "installed without a stub"}, "CPython 3.11.7 (`/x/python`)")
    assert text.splitlines()[0].endswith("3 interleaved rounds. Every side on CPython 3.11.7 "
                                         "(`/x/python`).")
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[0].split(" | ")[3:8] == ["requests completed", "wall s (median)", "CPU s",
                                         "peak MiB", "its wall / disagg wall"]
    disagg = rows[1].split(" | ")
    assert disagg[3:6] == ["10 of 12", "5.00", "5.00"]
    assert "prefix_aware" in disagg[2] and "prefix caching" in disagg[2]
    dyn = rows[2].split(" | ")
    assert dyn[0] == "| ai-dynamo==1.6.1" and "round robin" in dyn[1] and "mocker" in dyn[2]
    assert dyn[3:5] == ["12 of 12", "2.50"]
    # 2.5 s / 5.0 s; no start-up runs given: dashes
    assert dyn[7:] == ["**0.50 ×**", "–", "–", "installed without a stub |"]
    assert rows[3].startswith("| ai-dynamo==1.6.1 |") and "KV router" in rows[3]
    assert rows[4].startswith("| ai-dynamo==1.6.1 |") and "timeseries written" in rows[4]
    assert rows[5].endswith("| – | – | – | – | – | – | – | not measured: left out (--peers) |")
    # the ratio of the medians, then the same ratio round by round: 0.5, 0.5 and 0.5
    assert text.splitlines()[-1] == (
        "**Dynamo wall / disagg wall: 0.50** (medians of the same 3 interleaved rounds; round by "
        "round 0.50 to 0.50, median 0.50). Above 1 means disagg's whole run is the faster one.")


def test_start_up_is_the_first_seconds_run_and_the_rest_is_per_further_request(
        tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"timestamp": ms, "input_length": 1}) + "\n"
                             for ms in (0, 9_999, 10_000, 20_000)))
    head, n = bench.trace_head(trace, tmp_path)
    assert n == 2 and [json.loads(ln)["timestamp"] for ln in head.open()] == [0, 9_999]
    assert bench.disagg_command(trace, tmp_path, 10.0)[-3:] == [
        "workload.end_s=10", "--set", "experiment.duration_s=10"]
    results = {"disagg": [timing(5.0)], "disagg start-up": [timing(0.5)],
               "dynamo": [timing(4.0)], "dynamo start-up": [timing(0.1)]}
    text = tbl.table(results, skipped_but("dynamo"), 1, requests=(1_002, 2))
    assert "Start-up: the same command on the trace's first 10 s (2 requests), median wall; " \
           "per further request: the whole run's median wall less that, over the other 1,000 " \
           "requests." in text.splitlines()[0]
    rows = [ln.split(" | ") for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[1][8:10] == ["0.50", "4500"]  # (5.0 - 0.5) s / 1,000 requests, in µs
    assert rows[2][8:10] == ["0.10", "3900"]
    results["dynamo start-up"] = [tbl.Timing(0.1, 0.1, 1.0, "exit 1: no")]
    rows = [ln.split(" | ") for ln in tbl.table(results, skipped_but("dynamo"), 1, requests=(
        1_002, 2)).splitlines() if ln.startswith("| ")]
    assert rows[2][8:10] == ["–", "–"]


def test_round_by_round_ratios_pair_the_runs_of_each_round() -> None:
    results = {"disagg": [timing(4.0), timing(5.0), timing(8.0)],
               "dynamo": [timing(4.4), timing(4.0), timing(4.0)]}
    assert tbl.pair_ratios(results["dynamo"], results["disagg"]) == [1.1, 0.8, 0.5]
    last = tbl.table(results, skipped_but("dynamo"), 3).splitlines()[-1]
    assert "**Dynamo wall / disagg wall: 0.80**" in last  # 4.0 / 5.0, the medians
    assert "round by round 0.50 to 1.10, median 0.80)" in last


def test_a_peer_that_fails_gets_no_number_and_no_ratio_line() -> None:
    failed = tbl.Timing(1.0, 1.0, 50.0, "it fetches data from the Hugging Face Hub | x")
    text = tbl.table({"disagg": [timing(5.0)], "dynamo": [timing(2.0)],
                      "dynamo-kv": [timing(2.5)], "dynamo-files": [timing(3.0)],
                      "vidur": [failed]}, {}, 1)
    vidur = next(ln for ln in text.splitlines() if ln.startswith("| vidur"))
    assert vidur.endswith("| – | – | – | – | – | – | – | did not run here: it fetches data "
                          "from the Hugging Face Hub / x |")
    assert text.splitlines()[-1].startswith(  # one ratio per peer that ran, each named
        "**Dynamo wall / disagg wall: 0.40** (medians of the same 1 interleaved rounds; round "
        "by round 0.40 to 0.40, median 0.40); **Dynamo (KV router) wall / disagg wall: 0.50**")
    text = tbl.table({"disagg": [timing(5.0)]}, skipped_but(),
                     1)
    assert "wall / disagg wall:" not in text


def test_the_block_is_a_step_of_performance_py() -> None:
    perf = load_benchmark("performance")
    step = next(s for s in perf.STEPS if s.name == "vs-peers")
    assert step.commands == (("vs_peers.py", "--rounds", "9"),)
    assert step.quick == (("vs_peers.py", "--rounds", "1"),)
    step = next(s for s in perf.STEPS if s.name == "vs-peers-interpreter")
    assert step.commands == (("vs_peers.py", "--rounds", "9", "--peers",
                              "dynamo,dynamo-kv,dynamo-files", "--python", "/usr/bin/python3.11"),)

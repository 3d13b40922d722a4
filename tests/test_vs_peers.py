"""benchmarks/vs_peers.py, benchmarks/peer_sims.py and benchmarks/peer_venvs.py
(docs/performance.md's block ``vs-peers``): the install path with its fallback for a wheel stub,
the Dynamo driver, the completed requests read from each side's report, and the table. No network
and no install: pip and venv are fakes, and the driver runs against a fake ``dynamo.replay``
written into a temporary folder."""

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

# pip's stderr when ai-dynamo 1.6.1's aisimulate stub cannot reach its index (trimmed from a
# real run on this machine)
STUB_STDERR = """\
  error: subprocess-exited-with-error
      wheel_stub.error.InstallFailedError:
      The installation of aisimulate for version 0.13.0 failed.

      This is a special placeholder package which downloads a real wheel package
      from https://pypi.nvidia.com/. If https://pypi.nvidia.com/ is not reachable, we
      cannot download the real wheel file to install.
error: metadata-generation-failed
"""


class FakePython:
    """``subprocess.run`` for venv, pip and the import probes: which modules import, which
    distributions are installed, and the stderr (and exit code) of each ``pip install``."""

    def __init__(self, pip_results: list[tuple[int, str]], importable: bool = False) -> None:
        self.pip_results = pip_results
        self.importable = importable
        self.pip_calls: list[list[str]] = []
        self.dists: set[str] = set()
        self.venvs_made_by: list[str] = []  # the interpreter of each ``-m venv``

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if argv[1:3] == ["-m", "venv"]:
            self.venvs_made_by.append(argv[0])
            python = Path(argv[3]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")
            return subprocess.CompletedProcess(argv, 0, "", "")
        if argv[1:4] == ["-m", "pip", "install"]:
            args = argv[5:]  # after -q
            self.pip_calls.append(args)
            code, stderr = self.pip_results.pop(0)
            if code == 0 and args[-1].startswith("ai-dynamo=="):
                self.importable = True
            return subprocess.CompletedProcess(argv, code, "", stderr)
        ok = argv[1] == "-c" and ("find_spec" in argv[2] and self.importable
                                    or "distribution" in argv[2]
                                    and any(repr(d) in argv[2] for d in self.dists))
        return subprocess.CompletedProcess(argv, 0 if ok else 1, "", "")


def dynamo() -> Any:
    return next(p for p in sims.PEERS if p.name == "dynamo")


def test_the_stub_is_named_from_pips_stderr() -> None:
    assert venvs.stub_of(STUB_STDERR) == "aisimulate"
    assert venvs.stub_of("ERROR: No matching distribution found for ai-dynamo==9") is None
    assert venvs.install_reason(STUB_STDERR) == (
        "aisimulate for version 0.13.0 is a placeholder that downloads its wheel from another "
        "index (pypi.nvidia.com/), not reachable here")


def test_a_stub_failure_falls_back_to_the_install_without_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakePython([(1, STUB_STDERR), (0, ""), (0, "")])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    python, note = sims.install(dynamo(), tmp_path)
    assert python == tmp_path / "dynamo" / "bin" / "python"
    assert note == "replay core installed without aisimulate, which the offline replay does not import"
    assert fake.pip_calls[0] == ["ai-dynamo==1.6.1"]
    assert fake.pip_calls[1][0] == "ai-dynamo-runtime==1.6.1"
    assert not any(r.startswith(("aisimulate", "kubernetes", "transformers"))
                   for r in fake.pip_calls[1])
    assert fake.pip_calls[2] == ["--no-deps", "ai-dynamo==1.6.1"]
    assert "$ pip install --no-deps ai-dynamo==1.6.1" in (tmp_path / "dynamo-pip.log").read_text()


def test_an_installed_venv_is_reused_and_keeps_its_note(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "dynamo" / "bin").mkdir(parents=True)
    (tmp_path / "dynamo" / "bin" / "python").write_text("")
    fake = FakePython([], importable=True)
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    assert sims.install(dynamo(), tmp_path)[1].startswith("replay core installed without")
    fake.dists.add("aisimulate")  # a plain install (where the stub's index is reachable)
    assert sims.install(dynamo(), tmp_path)[1] == ""
    assert fake.pip_calls == []


def test_other_pip_failures_do_not_fall_back(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    fake = FakePython([(1, "ERROR: No matching distribution found for ai-dynamo==1.6.1")])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    assert sims.install(dynamo(), tmp_path) == (None, (
        "`pip install ai-dynamo==1.6.1` failed: "
        "ERROR: No matching distribution found for ai-dynamo==1.6.1"))
    assert len(fake.pip_calls) == 1
    other = STUB_STDERR.replace("aisimulate", "somethingelse")
    fake = FakePython([(1, other)])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    python, reason = sims.install(dynamo(), tmp_path / "b")
    assert python is None and "somethingelse" in reason and len(fake.pip_calls) == 1


def test_a_failing_fallback_names_both_failures(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    fake = FakePython([(1, STUB_STDERR), (1, "ERROR: No matching distribution for pyzmq>=26")])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    python, reason = sims.install(dynamo(), tmp_path)
    assert python is None
    assert reason.startswith("`pip install ai-dynamo==1.6.1` failed: aisimulate for version")
    assert reason.endswith("failed: ERROR: No matching distribution for pyzmq>=26")
    assert "; without aisimulate, `pip install ai-dynamo-runtime==1.6.1 " in reason


def test_another_interpreter_gets_venvs_of_its_own(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    other = Path("/opt/py/bin/python3.11")
    assert venvs.venv_name("dynamo", None) == "dynamo"
    assert venvs.venv_name("dynamo", Path(sys.executable)) == "dynamo"
    assert venvs.venv_name("dynamo", other) == "dynamo@opt-py-bin-python3.11"
    fake = FakePython([(1, STUB_STDERR), (0, ""), (0, "")])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    python, _ = sims.install(dynamo(), tmp_path, other)
    assert python == tmp_path / "dynamo@opt-py-bin-python3.11" / "bin" / "python"
    assert fake.venvs_made_by == [str(other)]


def test_disagg_is_installed_editable_from_this_tree_for_another_interpreter(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = Path("/opt/py/bin/python3.11")
    fake = FakePython([(0, "")])  # the probe for disagg fails (nothing installed yet): pip runs
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    cli, reason = venvs.project_venv(Path("/src/disagg"), tmp_path, other)
    assert (cli, reason) == (tmp_path / "disagg@opt-py-bin-python3.11" / "bin" / "disagg", "")
    assert fake.pip_calls == [["-e", "/src/disagg"]] and fake.venvs_made_by == [str(other)]
    fake = FakePython([(1, "ERROR: Could not find a version that satisfies ray")])
    monkeypatch.setattr(venvs.subprocess, "run", fake)
    cli, reason = venvs.project_venv(Path("/src/disagg"), tmp_path / "b", other)
    assert cli is None and reason == ("`pip install -e /src/disagg` failed: "
                                      "ERROR: Could not find a version that satisfies ray")


def test_the_interpreter_is_named_by_what_it_says_it_is(tmp_path: Path) -> None:
    label = venvs.interpreter_label(Path(sys.executable))
    assert label.startswith("CPython 3.") and label.endswith(
        f"(`{Path(sys.executable).resolve()}`)")
    assert venvs.interpreter_label(tmp_path / "none").endswith("(No such file or directory)")


def test_a_python_that_is_no_executable_is_bad_input(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    assert bench.main(["--python", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == (f"--python: {tmp_path / 'none'} is not an executable "
                                       "file; give the path of a Python interpreter\n")


FAKE_DYNAMO = """\
import json, os
class Report:
    summary = {"completed_requests": 5, "num_requests": 6, "extra": object()}
def run_trace_replay(trace, **kwargs):
    with open(os.environ["CALLS"], "w") as f:
        json.dump({"trace": str(trace), **kwargs}, f)
    return Report()
"""


def test_the_dynamo_driver_calls_the_replay_api_and_writes_its_summary(tmp_path: Path) -> None:
    (tmp_path / "dynamo").mkdir()
    (tmp_path / "dynamo" / "__init__.py").write_text("")
    (tmp_path / "dynamo" / "replay.py").write_text(FAKE_DYNAMO)
    calls, trace = tmp_path / "calls.json", tmp_path / "trace.jsonl"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CALLS": str(calls)}
    subprocess.run([sys.executable, *sims.dynamo_command(trace, tmp_path)], env=env,
                   check=True, cwd=tmp_path)
    assert json.loads(calls.read_text()) == {
        "trace": str(trace), "num_prefill_workers": 8, "num_decode_workers": 2,
        "router_mode": "round_robin",
        "prefill_engine_args": {"engine": {"block_size": 512, "worker_type": "prefill"}},
        "decode_engine_args": {"engine": {"block_size": 512, "worker_type": "decode"}}}
    summary = json.loads((tmp_path / dynamo().report).read_text())
    assert dynamo().completed(summary) == (5, 6)


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
    configuration, models = bench.disagg_setup(toml)
    assert configuration == "`x.toml`: 3 prefill (2 × h1) + 1 decode (1 × h2) units, m"
    assert "router `round_robin`, no prefix caching" in models


def timing(wall: float, completed: tuple[int, int] | None = (12, 12)) -> Any:
    return bench.Timing(wall, wall, 100.0, None, completed)


def test_the_table_gives_dynamo_wall_over_disagg_wall_from_the_same_rounds() -> None:
    results = {"disagg": [timing(4.0, (10, 12)), timing(6.0, (10, 12)), timing(5.0, (10, 12))],
               "dynamo": [timing(2.0), timing(3.0), timing(2.5)]}
    text = bench.table(results, {"vidur": "left out (--peers)"}, 3,
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
    assert rows[3].endswith("| – | – | – | – | – | – | – | not measured: left out (--peers) |")
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
    text = bench.table(results, {"vidur": "x"}, 1, requests=(1_002, 2))
    assert "Start-up: the same command on the trace's first 10 s (2 requests), median wall; " \
           "per further request: the whole run's median wall less that, over the other 1,000 " \
           "requests." in text.splitlines()[0]
    rows = [ln.split(" | ") for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[1][8:10] == ["0.50", "4500"]  # (5.0 - 0.5) s / 1,000 requests, in µs
    assert rows[2][8:10] == ["0.10", "3900"]
    results["dynamo start-up"] = [bench.Timing(0.1, 0.1, 1.0, "exit 1: no")]
    rows = [ln.split(" | ") for ln in bench.table(results, {"vidur": "x"}, 1, requests=(
        1_002, 2)).splitlines() if ln.startswith("| ")]
    assert rows[2][8:10] == ["–", "–"]


def test_round_by_round_ratios_pair_the_runs_of_each_round() -> None:
    results = {"disagg": [timing(4.0), timing(5.0), timing(8.0)],
               "dynamo": [timing(4.4), timing(4.0), timing(4.0)]}
    assert bench.pair_ratios(results["dynamo"], results["disagg"]) == [1.1, 0.8, 0.5]
    last = bench.table(results, {"vidur": "x"}, 3).splitlines()[-1]
    assert "**Dynamo wall / disagg wall: 0.80**" in last  # 4.0 / 5.0, the medians
    assert "round by round 0.50 to 1.10, median 0.80)" in last


def test_a_peer_that_fails_gets_no_number_and_no_ratio_line() -> None:
    failed = bench.Timing(1.0, 1.0, 50.0, "it fetches data from the Hugging Face Hub | x")
    text = bench.table({"disagg": [timing(5.0)], "dynamo": [timing(2.0)], "vidur": [failed]},
                       {}, 1)
    vidur = next(ln for ln in text.splitlines() if ln.startswith("| vidur"))
    assert vidur.endswith("| – | – | – | – | – | – | – | did not run here: it fetches data "
                          "from the Hugging Face Hub / x |")
    text = bench.table({"disagg": [timing(5.0)]}, {"dynamo": "x", "vidur": "y"}, 1)
    assert "wall / disagg wall:" not in text


def test_the_block_is_a_step_of_performance_py() -> None:
    perf = load_benchmark("performance")
    step = next(s for s in perf.STEPS if s.name == "vs-peers")
    assert step.commands == (("vs_peers.py", "--rounds", "9"),)
    assert step.quick == (("vs_peers.py", "--rounds", "1"),)
    step = next(s for s in perf.STEPS if s.name == "vs-peers-interpreter")
    assert step.commands == (("vs_peers.py", "--rounds", "9", "--peers", "dynamo", "--python",
                              "/usr/bin/python3.11"),)

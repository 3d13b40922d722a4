"""Interrupts keep results (issue 12 item 2): SIGINT mid-run on ``disagg run`` ends with exit 130,
a readable requests.parquet whose ledger balances (one row per submitted request, every status
completed / rejected / failed / cancelled), and the run's own progress line as the only
synchronisation (no sleeps)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import tomli_w
from conftest import experiment_dict

STATUSES = {"completed", "rejected", "failed", "cancelled"}


def _start(tmp_path: Path, engine: str, duration_s: float) -> subprocess.Popen[str]:
    exp = tmp_path / "exp.toml"
    # 3,000-token outputs keep requests in flight at any moment, so some are cancelled
    exp.write_text(tomli_w.dumps(experiment_dict(
        experiment__engine=engine, experiment__duration_s=duration_s,
        workload__output_tokens={"kind": "fixed", "value": 3000})))
    cmd = [sys.executable, "-m", "disagg.experiments.cli.main", "run", str(exp), "--no-live",
           "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def _wait_for_progress(proc: subprocess.Popen[str], timeout_s: float) -> list[str]:
    """Read the child's stdout until a progress line (``  emu ... s / ... s arrivals``)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    while True:
        if not sel.select(timeout_s):
            proc.kill()
            raise TimeoutError(f"no progress line within {timeout_s} s: {lines}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the run ended before a progress line: {lines}")
        lines.append(line)
        if line.startswith("  emu ") and "arrivals" in line and "emu    0.0 s" not in line:
            return lines


def _interrupt_and_check(tmp_path: Path, proc: subprocess.Popen[str], timeout_s: float,
                         full_run_requests: float) -> None:
    _wait_for_progress(proc, timeout_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 130, err
    assert "interrupted: results so far in" in err
    table = pq.read_table(tmp_path / "out" / "requests.parquet").to_pydict()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["submitted"] == len(table["request_id"]) > 0
    assert set(table["status"]) <= STATUSES
    assert len(set(table["request_id"])) == len(table["request_id"])
    cancelled = [r for s, r in zip(table["status"], table["reason"], strict=True)
                 if s == "cancelled"]
    assert cancelled and set(cancelled) == {"interrupted"}
    assert summary["cancelled"] == len(cancelled)
    # the run ended early: far fewer requests than the whole duration would have submitted
    assert summary["submitted"] < 0.9 * full_run_requests


def test_sigint_keeps_results_on_the_virtual_engine(tmp_path: Path) -> None:
    proc = _start(tmp_path, "virtual", 20_000.0)  # ~80k requests: minutes of wall time if let run
    _interrupt_and_check(tmp_path, proc, 120.0, 4.0 * 20_000)


@pytest.mark.ray
def test_sigint_keeps_results_on_the_ray_engine(tmp_path: Path) -> None:
    proc = _start(tmp_path, "ray", 60.0)
    _interrupt_and_check(tmp_path, proc, 120.0, 4.0 * 60)
    # no Ray process started by the run outlives it (the run had its own session)
    survivors = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(proc.pid)], check=False,
                               capture_output=True, text=True).stdout.strip()
    assert survivors == ""


def test_first_signal_asks_to_stop_the_second_exits_at_once() -> None:
    from disagg.experiments.cli.interrupts import graceful_stop

    before = signal.getsignal(signal.SIGTERM)
    with graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next bytecode
        assert stop.requested and stop.reason == "terminated"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupted_comparison_keeps_the_runs_that_finished(tmp_path: Path) -> None:
    from conftest import make_experiment

    from disagg.actors.engines.stop import StopFlag
    from disagg.experiments.compare.runs import compare, parse_policies, plan_runs

    base = make_experiment(experiment__duration_s=2.0)
    plans = plan_runs(base, parse_policies("round_robin,least_loaded"), [2.0, 4.0], 1)
    stop = StopFlag()

    def stop_after_the_first(plan, summary) -> None:
        stop.request("interrupted")

    report = compare(base, plans, tmp_path / "cmp", use_ray=False, progress=stop_after_the_first,
                     stop=stop)
    assert report is not None and len(report.rows) == 1
    assert len(list((tmp_path / "cmp" / "runs").glob("*/*/*/run.json"))) == 1
    assert compare(base, plans, tmp_path / "none", use_ray=False, stop=stop) is None
    assert not (tmp_path / "none").exists()


def test_an_interrupted_capacity_search_prints_its_bracket(capsys, monkeypatch) -> None:
    from disagg.experiments.cli.main import main
    from disagg.experiments.compare import capacity as capacity_cli  # cmd_capacity imports from it

    quickstart = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
    real = capacity_cli.attainment

    def stop_on_second_rate(exp, rate, repeats, stop):  # the second measurement is cut short
        if stop.requested or rate != 0.25 * exp.workload.rate_per_s:
            os.kill(os.getpid(), signal.SIGINT)
        return real(exp, rate, repeats, stop)

    monkeypatch.setattr(capacity_cli, "attainment", stop_on_second_rate)
    assert main(["capacity", str(quickstart), "--duration", "2"]) == 130
    out = capsys.readouterr().out
    assert "interrupted: search stopped after 1 rate(s)" in out

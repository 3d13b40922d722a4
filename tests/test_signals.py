"""SIGTERM and SIGHUP do what Ctrl-C does, on every engine (issue 29 item 1): the command's own
handler survives Ray's start-up and shut-down, a stop requested while the engine starts ends
the run with nothing written, and SIGHUP is a stop like the others. The real-Ray cases (a
SIGTERM mid-run, a SIGINT while Ray starts) synchronise on the process's own output lines."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_experiment

from disagg.actors.engines.stop import StopFlag, StoppedBeforeStart
from disagg.experiments.cli.interrupts import graceful_stop
from disagg.experiments.run import run_experiment

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def test_sighup_is_a_stop_like_sigterm() -> None:
    with graceful_stop() as stop:
        os.kill(os.getpid(), signal.SIGHUP)  # the handler runs before the next bytecode
        assert stop.requested and stop.reason == "hangup"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGHUP)


def test_ray_start_keeps_the_drivers_handlers() -> None:
    ray = pytest.importorskip("ray")
    from disagg.actors.engines.signals import KEPT, driver_signals_kept

    def mine(signum: int, frame: object) -> None:
        """The command's handler."""

    before = {sig: signal.getsignal(sig) for sig in KEPT}
    try:
        for sig in KEPT:
            signal.signal(sig, mine)
        with driver_signals_kept():  # what ray.init does to a driver's handlers:
            ray._private.utils.set_sigterm_handler(lambda s, f: sys.exit(s))
            assert signal.getsignal(signal.SIGTERM) is mine  # ...is not done here,
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and anything else is undone
        assert all(signal.getsignal(sig) is mine for sig in KEPT)
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def test_a_stop_during_start_up_writes_nothing(tmp_path: Path) -> None:
    stop = StopFlag()
    stop.request("terminated")  # as if the signal came while the engine was starting
    with pytest.raises(StoppedBeforeStart, match="terminated during start-up"):
        run_experiment(make_experiment(), tmp_path / "out", stop=stop)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden temporary sibling


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "disagg.experiments.cli.main", "run", str(QUICKSTART),
           "--no-live", "--out", str(tmp_path / "out"), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                            cwd=tmp_path)


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> None:
    """Read the child's stdout until a line starting with ``prefix`` (no sleeps)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    while True:
        if not sel.select(timeout_s):
            proc.kill()
            raise TimeoutError(f"no line starting {prefix!r} within {timeout_s} s: {seen}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the run ended before a line starting {prefix!r}: {seen}")
        seen.append(line)
        if line.startswith(prefix) and "emu    0.0 s" not in line:
            return


def _session_processes(proc: subprocess.Popen[str]) -> str:
    """Processes still in the run's session (it had its own: Ray's would be here)."""
    return subprocess.run(["ps", "-o", "pid=,args=", "-s", str(proc.pid)], check=False,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.ray
def test_sigterm_mid_run_on_the_ray_engine_keeps_results(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--duration", "20")
    _wait_for_line(proc, "  emu ", 120.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120.0)
    assert proc.returncode == 130, err
    assert "terminated: results so far in" in err and "SIGTERM received" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["submitted"] > 0
    check = subprocess.run([sys.executable, "-m", "disagg.experiments.cli.main", "check",
                            str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr  # one status per request
    assert _session_processes(proc) == ""


@pytest.mark.ray
def test_sigint_while_ray_starts_exits_130_with_nothing_left(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--duration", "20")
    _wait_for_line(proc, "disagg: running", 120.0)  # printed just before Ray starts
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120.0)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results, no hidden temp folder
    assert _session_processes(proc) == ""

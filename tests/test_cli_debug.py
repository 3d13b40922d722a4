"""Issue 11 item 5 (part): ``--debug`` shows the traceback of an internal error, and a command
checks its experiment once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from disagg.experiments import run as run_module
from disagg.experiments.cli import common
from disagg.experiments.cli.main import main

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


@pytest.mark.parametrize("debug", [False, True])
def test_debug_shows_the_traceback_of_an_internal_error(tmp_path: Path, capsys, monkeypatch,
                                                        debug: bool) -> None:
    monkeypatch.setattr(run_module, "run_experiment", _boom)  # cmd_run imports it when run
    argv = ["--debug"] if debug else []
    code = main([*argv, "run", str(QUICKSTART), "--engine", "virtual", "--no-live",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "disagg: internal error: RuntimeError: boom" in err
    assert ("Traceback (most recent call last)" in err) is debug
    assert ("run again with --debug" in err) is not debug


def test_run_checks_its_experiment_once(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real = common.check_experiment

    def counting(exp: Any) -> None:
        calls.append(exp.experiment.name)
        real(exp)

    monkeypatch.setattr(common, "check_experiment", counting)
    monkeypatch.setattr(run_module, "check_experiment", counting)
    assert main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "1", "--no-live",
                 "--out", str(tmp_path / "o")]) == 0
    assert calls == ["quickstart"]

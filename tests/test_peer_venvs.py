"""benchmarks/peer_venvs.py and peer_sims.install: each peer's venv, made once from the running
interpreter or another (``--python``), with its fallback for a wheel stub; disagg's own venv for
another interpreter; the interpreter's label. No network and no install: venv and pip are fakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchscripts import load_benchmark

load_benchmark("vs_peers")  # loads its sibling modules too
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

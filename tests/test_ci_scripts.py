""".ci/run and .ci/typecheck, run with stand-ins for the interpreter and the tools they call
(no install, no lint, no test run): every gate's exit decides CI's, "no tests collected" fails
it, and neither script leaves its scratch folder behind (a venv is ~1 GB; 295 left-behind
folders once filled this machine's disk until Ray's disk monitor broke a run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# `python3 -m venv DIR` makes DIR/bin/activate, which defines the venv's tools as exported shell
# functions (so .ci/typecheck, a child bash, sees them too); each exits with the code that the
# variable <TOOL>_RC names (0 if unset; `python -m mypy` with MYPY_RC)
FAKE_PYTHON3 = """#!/usr/bin/env bash
set -eu
[ "$1 $2" = "-m venv" ] || exit 97
mkdir -p "$3/bin"
cat > "$3/bin/activate" <<'ACTIVATE'
python() { if [ "$2" = mypy ]; then return "${MYPY_RC:-0}"; fi; return 0; }
pip() { return "${PIP_RC:-0}"; }
ruff() { return "${RUFF_RC:-0}"; }
pytest() { return "${PYTEST_RC:-0}"; }
export -f python pip ruff pytest
ACTIVATE
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(FAKE_PYTHON3)
    (bin_dir / "chromium").write_text("#!/bin/sh\nexit 0\n")  # so CI installs nothing
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "TMPDIR": str(scratch),
            "HOME": str(tmp_path)}


def _ci(env: dict[str, str], script: str, **rcs: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / ".ci" / script)], capture_output=True, text=True,
                          env={**env, **{k.upper(): str(v) for k, v in rcs.items()}},
                          timeout=60)


@pytest.mark.parametrize("rcs, rc, says", [
    ({}, 0, ""),
    ({"pytest_rc": 5}, 1, "CI: pytest collected no tests; failing"),
    ({"pytest_rc": 1}, 1, "CI: pytest failed (exit 1)"),
    ({"ruff_rc": 1}, 1, "CI: ruff check failed (exit 1)"),
    ({"mypy_rc": 2}, 1, "CI: mypy (.ci/typecheck) failed (exit 2)"),
    ({"pip_rc": 1}, 1, ""),  # the install failed: CI stops there, and still cleans up
])
def test_ci_fails_when_any_gate_fails_and_leaves_no_scratch(fake_env: dict[str, str],
                                                            rcs: dict[str, int], rc: int,
                                                            says: str) -> None:
    done = _ci(fake_env, "run", **rcs)
    assert done.returncode == rc, done.stderr
    assert says in done.stderr
    assert list(Path(fake_env["TMPDIR"]).iterdir()) == []


def test_typecheck_leaves_no_scratch_nor_touches_the_tree(fake_env: dict[str, str]) -> None:
    python = Path(fake_env["TMPDIR"]).parent / "bin" / "python"  # mypy, as the venv's python
    python.write_text("#!/bin/sh\nexit 3\n")
    python.chmod(0o755)
    done = _ci(fake_env, "typecheck")
    assert done.returncode == 3, done.stderr  # mypy's exit is the script's
    assert list(Path(fake_env["TMPDIR"]).iterdir()) == []
    assert all((ROOT / d).is_dir() and not (ROOT / d).is_symlink()
               for d in ("cluster", "policies", "fabric", "actors", "experiments"))

"""The peers' virtual environments: one ``python -m venv`` per peer under a cache folder, filled
once by ``pip install`` of a pinned requirement (benchmarks/vs_peers.py, aiperf_vs_summary.py).

The registry pip is configured for is used as it is. When the plain install fails only because a
dependency is a wheel stub (a placeholder package that downloads the real wheel from another
index, unreachable here), a peer may carry a :class:`Fallback` that installs it without that
dependency, provided what is benchmarked never imports it. Nothing here touches the environment
running the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "disagg-peers"


@dataclass(frozen=True)
class Fallback:
    """How to install a peer whose plain ``pip install`` fails only on ``stub``, a wheel stub
    that fetches the real wheel from another index: ``deps`` (pip-installed with their own
    dependencies), then ``no_deps`` with ``--no-deps``; ``note`` goes into the table."""

    stub: str
    deps: tuple[str, ...]
    no_deps: str
    note: str



def peer_venv(name: str, requirement: str, module: str, cache: Path = DEFAULT_CACHE,
              fallback: Fallback | None = None,
              interpreter: Path | None = None) -> tuple[Path | None, str]:
    """The python of the venv ``cache/name`` with ``requirement`` pip-installed (made and filled
    once, reused while ``module`` imports), or None and one line on why it is not usable; when
    pip fails only on ``fallback``'s stub, the fallback install instead. The venv is made from
    ``interpreter`` (default: the one running this script), under a name of its own for another
    interpreter (:func:`venv_name`). Never touches the environment running this script."""
    venv = cache / venv_name(name, interpreter)
    python = venv / "bin" / "python"
    if not python.exists():
        made = make_venv(venv, interpreter)
        if made:
            return None, made
    if imports(python, module):
        return python, ""
    log = cache / f"{name}-pip.log"
    done = pip(python, [requirement], log)
    if done.returncode != 0:
        failed = f"`pip install {requirement}` failed: {install_reason(done.stderr)}"
        if fallback is None or stub_of(done.stderr) != fallback.stub:
            return None, failed
        for args in (list(fallback.deps), ["--no-deps", fallback.no_deps]):
            done = pip(python, args, log)
            if done.returncode != 0:
                return None, (f"{failed}; without {fallback.stub}, `pip install "
                              f"{' '.join(args)}` failed: {install_reason(done.stderr)}")
    if not imports(python, module):
        return None, f"`{module}` does not import after `pip install {requirement}`"
    return python, ""


def venv_name(name: str, interpreter: Path | None) -> str:
    """The cache folder's name of ``name``'s venv: ``name`` for the interpreter running this
    script, ``name@<its path, slashes as dashes>`` for another."""
    if interpreter is None or Path(interpreter).resolve() == Path(sys.executable).resolve():
        return name
    return f"{name}@{str(interpreter).strip('/').replace('/', '-')}"


def make_venv(venv: Path, interpreter: Path | None = None) -> str:
    """``interpreter -m venv VENV`` (default: this interpreter): '' when made, else one line on
    why not."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([str(interpreter or sys.executable), "-m", "venv", str(venv)],
                          capture_output=True, text=True)
    return "" if made.returncode == 0 else \
        f"`python -m venv {venv}` failed: {install_reason(made.stderr)}"


def pip(python: Path, args: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pip install -q ARGS``, its output appended to ``log``."""
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ pip install {' '.join(args)}\n{done.stdout}{done.stderr}exit {done.returncode}\n")
    return done


def imports(python: Path, module: str) -> bool:
    """Whether ``module`` is found by ``python`` (its parent packages imported)."""
    return subprocess.run([str(python), "-c", f"import importlib.util as u; "
                           f"assert u.find_spec({module!r})"], capture_output=True).returncode == 0


def has_distribution(python: Path, dist: str) -> bool:
    """Whether the distribution ``dist`` is installed in ``python``'s environment."""
    return subprocess.run([str(python), "-c", f"import importlib.metadata as m; "
                           f"m.distribution({dist!r})"], capture_output=True).returncode == 0


def stub_of(stderr: str) -> str | None:
    """The name of the wheel stub whose installation made pip fail, or None."""
    for line in (ln.strip() for ln in stderr.splitlines()):
        if line.startswith("The installation of") and line.endswith("failed."):
            return line.removeprefix("The installation of ").split()[0]
    return None


def install_reason(stderr: str) -> str:
    """One line on why pip failed (a wheel stub that needs an unreachable index, else the
    last error line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("The installation of") and "failed" in line:
            stub = line.removeprefix("The installation of ").removesuffix(" failed.")
            where = next((ln for ln in lines[i:i + 4] if "https://" in ln), "")
            return (f"{stub} is a placeholder that downloads its wheel from another index "
                    f"({where.split('https://')[1].split()[0].rstrip('.') if where else '?'}), "
                    f"not reachable here")
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1]


def project_venv(repo: Path, cache: Path, interpreter: Path) -> tuple[Path | None, str]:
    """The ``disagg`` console script of a venv made from ``interpreter`` with the project at
    ``repo`` installed editable (its dependencies from the registry, once; installed again when
    the venv's disagg is another tree's), or None and one line on why it is not usable."""
    venv = cache / venv_name("disagg", interpreter)
    python = venv / "bin" / "python"
    if not python.exists():
        made = make_venv(venv, interpreter)
        if made:
            return None, made
    where = subprocess.run([str(python), "-c", "import disagg.cluster as m; print(m.__file__)"],
                           capture_output=True, text=True)
    if where.returncode != 0 or Path(where.stdout.strip()).resolve().parents[1] != repo.resolve():
        done = pip(python, ["-e", str(repo)], cache / f"{venv.name}-pip.log")
        if done.returncode != 0:
            return None, f"`pip install -e {repo}` failed: {install_reason(done.stderr)}"
    return venv / "bin" / "disagg", ""


def interpreter_label(interpreter: Path) -> str:
    """``CPython 3.11.7 (`/path/to/python3.11`)``: what ``interpreter`` says it is and where its
    executable is (links resolved), or why it cannot be asked."""
    probe = "import platform, sys; print(platform.python_implementation(), " \
            "platform.python_version(), sys.executable)"
    try:
        said = subprocess.run([str(interpreter), "-c", probe], capture_output=True, text=True)
    except OSError as e:
        return f"`{interpreter}` ({e.strerror})"
    if said.returncode != 0:
        return f"`{interpreter}` (it did not start: exit {said.returncode})"
    impl, version, exe = said.stdout.split(maxsplit=2)
    return f"{impl} {version} (`{Path(exe.strip()).resolve()}`)"

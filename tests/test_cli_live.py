"""``disagg run`` under a pseudo-terminal (the live dashboard redraws) and through a pipe (plain)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "disagg.experiments.cli.main", "run", str(QUICKSTART),
            "--engine", "virtual", *args]


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    """Everything written to the pty until the child exits and the pty drains."""
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 30.0)
        if not ready:
            raise TimeoutError("disagg run wrote nothing for 30 s")
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    return b"".join(chunks)


def test_live_dashboard_redraws_on_a_terminal(tmp_path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "60", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    # 200 emu s of arrivals take a second or more of wall time on the virtual engine: enough for redraws
    proc = subprocess.Popen(_cli("--duration", "200", "--out", str(tmp_path / "out")),
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    try:
        out = _read_all(master, proc).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert proc.returncode == 0, out[-2000:]
    assert out.count("disagg live") >= 3, out[-2000:]
    assert "\x1b[" in out  # cursor movement between frames
    assert "results in" in out and (tmp_path / "out" / "summary.json").exists()


def test_piped_output_has_no_escape_codes(tmp_path) -> None:
    proc = subprocess.run(_cli("--duration", "10", "--out", str(tmp_path / "out")),
                          capture_output=True, cwd=tmp_path, timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert "\x1b" not in out and "disagg live" not in out
    assert "TTFT ms" in out and "results in" in out

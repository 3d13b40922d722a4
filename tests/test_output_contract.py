"""The --out contract everywhere and output problems (issue 29 items 3-4, issue 30's first item):
files the user wrote are refused without --force, one writer per output path (a lock file next
to it, stale locks taken over), serve checks its folder before Ray starts, and a disk that fills
up while writing ends with one line naming the path and the OS error, and no partial folder."""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from disagg.experiments.cli.main import main
from disagg.experiments.results import streaming
from disagg.experiments.results.lock import lock_path

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def _run(*args: str) -> int:
    return main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "1", "--no-live",
                 *args])


def test_calibrate_refuses_a_users_file_without_force(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "cal.json"
    mine.write_text("my own notes")
    assert main(["calibrate", "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--out: value '{mine}' already exists" in err and "\n" not in err
    assert mine.read_text() == "my own notes"
    assert main(["calibrate", "--out", str(mine), "--force"]) == 0
    assert isinstance(json.loads(mine.read_text()), dict)  # the report replaced the notes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json"]  # no temporary file left


def test_a_live_lock_refuses_the_second_writer(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        lock_path(out).write_text(f"{holder.pid}\n")  # another disagg is writing out
        assert _run("--out", str(out)) == 2
        err = capsys.readouterr().err
        assert f"is being written by another disagg command (pid {holder.pid}" in err
        assert not out.exists() and lock_path(out).read_text() == f"{holder.pid}\n"
    finally:
        holder.communicate(b"")


def test_a_stale_lock_is_taken_over_and_released(tmp_path: Path) -> None:
    out = tmp_path / "out"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock_path(out).write_text(gone.stdout)  # its process has exited: stale
    assert _run("--out", str(out)) == 0
    assert (out / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the lock was released


def _wait_for_progress(proc: subprocess.Popen[str], timeout_s: float) -> None:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        if not sel.select(timeout_s):
            proc.kill()
            raise TimeoutError("no progress line")
        line = proc.stdout.readline()
        assert line, "the run ended before a progress line"
        if line.startswith("  emu ") and "emu    0.0 s" not in line:
            return


def test_two_runs_to_one_out_the_second_exits_2_the_first_keeps_its_results(
        tmp_path: Path) -> None:
    out = tmp_path / "same"
    cmd = [sys.executable, "-m", "disagg.experiments.cli.main", "run", str(QUICKSTART),
           "--engine", "virtual", "--no-live", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([*cmd, "--duration", "20000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_progress(first, 120.0)  # the first is running (and holds the lock)
    second = subprocess.run([*cmd, "--duration", "1", "--seed", "99"], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert "is being written by another disagg command" in second.stderr
    assert first.returncode == 130, err
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["experiment"]["duration_s"] == 20000  # the first run's results, not the second's
    assert (out / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no lock, no hidden folder


def test_run_force_keeps_a_users_file_in_a_disagg_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert _run("--out", str(out)) == 0
    (out / "my-analysis.ipynb").write_text("{}")
    assert _run("--out", str(out)) == 2  # refused without --force, and nothing touched
    assert _run("--out", str(out), "--force") == 0
    assert (out / "my-analysis.ipynb").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_serve_refuses_an_existing_folder_before_ray_starts(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    import ray  # the check must come before Ray starts: any ray.init here fails the test

    def no_init(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the output folder was checked")

    monkeypatch.setattr(ray, "init", no_init)
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["serve", str(QUICKSTART), "--out", str(mine), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"--out: value '{mine}' already exists" in err
    assert main(["serve", str(QUICKSTART), "--out", str(mine), "--force", "--port", "0"]) == 2
    assert "was not written by disagg" in capsys.readouterr().err
    assert list(mine.iterdir()) == []


def test_a_disk_full_while_writing_is_one_line_and_leaves_nothing(tmp_path: Path, capsys,
                                                                  monkeypatch) -> None:
    def full(exp: object) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(streaming, "config_toml", full)  # written last, after the tables
    assert _run("--out", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"disagg: error: cannot write '{tmp_path / 'out'}'")
    assert "[Errno 28] No space left on device" in err and "\n" not in err
    assert "internal error" not in err
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary sibling


def test_a_disk_full_in_the_background_parquet_write_is_one_line_and_leaves_nothing(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """The streamed tables are encoded and written on a worker thread: its error still ends the
    run as the same one line, and the temporary folder goes."""
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(streaming.pq.ParquetWriter, "write_table", full)
    assert _run("--out", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"disagg: error: cannot write '{tmp_path / 'out'}'")
    assert "[Errno 28] No space left on device" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 KiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_real_full_disk_leaves_no_partial_folder(small_disk: Path, capsys) -> None:
    (small_disk / "filler").write_bytes(b"x" * 40_000)  # leave too little for the results
    out = small_disk / "out"
    assert main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "30", "--no-live",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"cannot write '{out}'" in err and "No space left on device" in err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_plan_into_a_read_only_folder_is_refused_before_work(tmp_path: Path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        space = Path(__file__).resolve().parents[1] / "experiments" / "spaces"
        search = sorted(space.glob("*.toml"))[0]
        code = main(["plan", str(QUICKSTART), "--search", str(search), "--local", "--out",
                     str(ro / "plan")])
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and str(ro / "plan") in err and "Read-only file system" in err

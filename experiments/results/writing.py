"""Write a run's results folder atomically: everything goes to a temporary sibling folder that is
renamed into place only when complete, so a failed run never leaves half-written output. Every
folder written holds disagg's marker file (``experiments/results/guard.py``); only such a folder is
ever replaced. ``results/streaming.py`` streams a run's tables into such a folder while it goes."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w

from disagg.cluster.config import Experiment
from disagg.cluster.errors import OutputInTheWay, OutputWriteError
from disagg.experiments.results.guard import (
    DISAGG_NAMES,
    MARKER,
    marker_bytes,
    written_by_disagg,
)


def _toml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_ready(v) for v in value if v is not None]
    return value


def config_toml(exp: Experiment) -> str:
    """The fully resolved experiment as TOML (catalog entries expanded, defaults filled in)."""
    return tomli_w.dumps(_toml_ready(exp.model_dump(mode="python")))


def json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def user_dir_mode() -> int:
    """The permission bits ``mkdir`` gives a new folder under the process's umask (0o755 under
    the usual 022), read without changing it (Linux ``/proc/self/status``; else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o777 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out_dir``, replacing an older folder only if disagg
    wrote it (it holds the marker); anything else there is left alone and ``tmp`` is kept. The
    folder gets the user's umask (``mkdtemp`` made it 0700 while it was being written)."""
    tmp.chmod(user_dir_mode())
    if out_dir.exists() or out_dir.is_symlink():
        if not written_by_disagg(out_dir):
            raise OutputInTheWay(f"{out_dir} appeared during the run and was not written by "
                                 f"disagg; it was left alone and the results are in {tmp}")
        # a fresh hidden name (never a user's folder), and no signal between the two renames: a
        # Ctrl-C leaves either the old folder or the new one in place, never neither
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        with _signals_held():
            out_dir.rename(old)
            tmp.rename(out_dir)
            kept = _carry_foreign(old, out_dir)
        if kept:
            shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def _carry_foreign(old: Path, new: Path) -> bool:
    """Move every entry of the replaced folder ``old`` that disagg did not write
    (:data:`~disagg.experiments.results.guard.DISAGG_NAMES`) into ``new``; False (``old`` is then
    kept, never deleted) if one could not be moved."""
    for entry in old.iterdir():
        if entry.name in DISAGG_NAMES:
            continue
        try:
            if (new / entry.name).exists():
                return False
            entry.rename(new / entry.name)
        except OSError:
            return False
    return True


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when the block ends) in the main thread."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def staged_folder(out_dir: Path, kind: str) -> Iterator[Path]:
    """A fresh hidden sibling of ``out_dir`` holding disagg's marker (``kind``: run, compare), to
    fill and then :func:`swap_into_place`; removed if the block raises — except when ``out_dir``
    was taken meanwhile (:class:`OutputInTheWay` says where the finished folder waits)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / MARKER).write_bytes(marker_bytes(kind))
        yield tmp
    except OutputInTheWay:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_results(out_dir: Path, exp: Experiment, tables: Mapping[str, pa.Table],
                  summary: dict[str, Any], extra: dict[str, bytes] | None = None) -> Path:
    """Write ``tables`` as Parquet, summary.json and config.toml into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    try:
        with staged_folder(out_dir, "run") as tmp:
            for name, table in tables.items():
                pq.write_table(table, tmp / f"{name}.parquet")
            (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2) + "\n")
            (tmp / "config.toml").write_text(config_toml(exp))
            for name, data in (extra or {}).items():
                (tmp / name).write_bytes(data)
            swap_into_place(tmp, out_dir)
    except OSError as e:
        raise OutputWriteError(out_dir, e) from e
    return out_dir

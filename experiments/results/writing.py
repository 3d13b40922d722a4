"""Write a run's results folder atomically: everything goes to a temporary sibling folder that is
renamed into place only when complete, so a failed run never leaves half-written output. Every
folder written holds disagg's marker file (``experiments/results/guard.py``); only such a folder is
ever replaced."""

from __future__ import annotations

import json
import math
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w

from disagg.cluster.config import Experiment
from disagg.experiments.results.guard import MARKER, marker_bytes, written_by_disagg


def _toml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_ready(v) for v in value if v is not None]
    return value


def config_toml(exp: Experiment) -> str:
    """The fully resolved experiment as TOML (catalog entries expanded, defaults filled in)."""
    return tomli_w.dumps(_toml_ready(exp.model_dump(mode="python")))


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


class OutputInTheWay(RuntimeError):
    """The output path was taken, by something disagg did not write, while the run went on."""


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out_dir``, replacing an older folder only if disagg
    wrote it (it holds the marker); anything else there is left alone and ``tmp`` is kept."""
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
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (delivered when the block ends) in the main thread."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def write_results(out_dir: Path, exp: Experiment, tables: dict[str, pa.Table],
                  summary: dict[str, Any], extra: dict[str, bytes] | None = None) -> Path:
    """Write ``tables`` as Parquet, summary.json and config.toml into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / MARKER).write_bytes(marker_bytes("run"))
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet")
        (tmp / "summary.json").write_text(json.dumps(_json_ready(summary), indent=2) + "\n")
        (tmp / "config.toml").write_text(config_toml(exp))
        for name, data in (extra or {}).items():
            (tmp / name).write_bytes(data)
        swap_into_place(tmp, out_dir)
    except OutputInTheWay:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir

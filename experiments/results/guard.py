"""Never destroy a user's data: where a run or a comparison may write, checked before it starts.

Every folder disagg writes (a run's results, a comparison) holds a marker file, :data:`MARKER`.
An existing output path is refused unless ``--force`` is given, and even then only a folder that
holds the marker is replaced; anything else (a user's folder, a file) is never touched. A name
that resolves onto or outside the results root of an ``output.dir`` template (``"."``, ``".."``)
is refused, and the location is probed (a temporary folder created and removed next to it) so
that an unwritable place fails before any actor starts, not after the run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from disagg.cluster.errors import ConfigError

MARKER = ".disagg-results"


def marker_bytes(kind: str) -> bytes:
    """The marker file's content: which disagg command wrote the folder (``run`` / ``compare``)."""
    return (json.dumps({"written_by": "disagg", "kind": kind}) + "\n").encode()


DISAGG_NAMES = frozenset({
    MARKER, "config.toml", "summary.json", "requests.parquet", "timeseries.parquet",
    "transfers.parquet", "events.msgpack", "run.json",  # a run's results folder
    "compare.json", "runs", "plots", "comparison.parquet", "table.csv", "report.md",
    "report.html",  # a comparison's
})
"""The names disagg writes into a results or comparison folder. ``--force`` replaces these; any
other file or folder in the replaced folder (the user's) is carried over into the new one."""


def written_by_disagg(path: Path) -> bool:
    """True if ``path`` is a folder that disagg wrote (it holds the marker file)."""
    return path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()


def _nearest_existing(path: Path) -> Path:
    node = path
    while not node.exists():
        if node.parent == node:
            break
        node = node.parent
    return node


def _probe_writable(what: str, path: Path) -> None:
    """Create and remove a temporary folder where ``path`` will be created; ConfigError if not."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise ConfigError(f"{what}: value '{path}' is under the file '{base}'; "
                          "allowed: a path in a writable folder")
    try:
        probe = tempfile.mkdtemp(prefix=".disagg-probe-", dir=base)
        os.rmdir(probe)
    except OSError as e:
        raise ConfigError(f"{what}: value '{path}' cannot be written ({e.strerror} in '{base}'); "
                          "allowed: a path in a writable folder") from None


def check_output(what: str, path: Path, force: bool = False) -> Path:
    """Check that ``path`` may be written: new, or (with ``force``) a folder disagg wrote, in a
    writable place. ``what`` names the option in the message (``--out``). Returns ``path``."""
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ConfigError(f"{what}: value '{path}' is the working folder or one of its parents; "
                          "allowed: a new folder")
    if path.exists() or path.is_symlink():
        if not force:
            raise ConfigError(f"{what}: value '{path}' already exists; allowed: a new path, or "
                              "--force to replace a results folder disagg wrote")
        if not written_by_disagg(path):
            raise ConfigError(f"{what}: value '{path}' exists and was not written by disagg (no "
                              f"{MARKER} marker); allowed: a new path (it is never replaced)")
    _probe_writable(what, path)
    return path


def check_template_root(template: str, name: str) -> None:
    """``output.dir`` formatted with the experiment ``name`` must lie strictly inside the
    template's own root (the part before ``{name}``): ``"."`` or ``".."`` as a name is refused."""
    if "{name}" not in template:
        return
    root = Path(template.split("{name}", 1)[0] or ".").resolve()
    target = Path(template.format(name=name)).resolve()
    if target == root or root not in target.parents:
        raise ConfigError(f"field 'experiment.name': value {name!r} puts the output at '{target}', "
                          f"onto or outside the results root '{root}'; allowed: a name that is a "
                          "folder inside it")

"""One writer per output path: a lock file next to it, so that two commands started with the same
``--out`` cannot both write there (the second is refused before it starts any work, exit 2).

The lock is ``.NAME.disagg-lock`` in the output's parent folder, created atomically
(``O_CREAT | O_EXCL``) and holding the owner's process id. A lock whose process no longer runs
(the owner was killed with ``kill -9``) is stale and taken over. The lock is removed when the
command ends, however it ends (results written, refused, interrupted, failed).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from disagg.cluster.errors import ConfigError

LOCK_SUFFIX = ".disagg-lock"


def lock_path(path: Path) -> Path:
    """The lock file of output path ``path`` (a hidden sibling)."""
    return path.parent / f".{path.name}{LOCK_SUFFIX}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _owner(lock: Path) -> int | None:
    """The pid in ``lock``, or None when it is unreadable or not a pid (being written)."""
    try:
        return int(lock.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _create(lock: Path) -> bool:
    """Create ``lock`` holding this pid; False if it exists already."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    return True


def acquire(what: str, path: Path) -> Path:
    """Take the lock of ``path`` (``what`` names the option in the message) or raise
    :class:`ConfigError` naming the process that holds it; returns the lock file."""
    lock = lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a stale lock removed by two takers at once: try again
        if _create(lock):
            return lock
        pid = _owner(lock)
        if pid is not None and pid != os.getpid() and _alive(pid):
            raise ConfigError(f"{what}: value '{path}' is being written by another disagg "
                              f"command (pid {pid}, lock {lock}); allowed: another path, or wait "
                              "until it ends")
        if pid is None:
            continue  # its owner is writing its pid right now
        try:
            lock.unlink()  # stale: its process is gone
        except FileNotFoundError:
            pass
    raise ConfigError(f"{what}: value '{path}' could not be locked ({lock} keeps coming back); "
                      "allowed: another path")


@contextmanager
def output_locked(what: str, path: Path) -> Iterator[None]:
    """Hold the lock of output path ``path`` for the block (see :func:`acquire`)."""
    try:
        lock = acquire(what, path)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EROFS, errno.ENOSPC, errno.ENOTDIR, errno.EPERM):
            raise ConfigError(f"{what}: value '{path}' cannot be written ({e.strerror} in "
                              f"'{Path(path).parent}'); allowed: a path in a writable folder"
                              ) from None
        raise
    try:
        yield
    finally:
        try:
            if _owner(lock) == os.getpid():
                lock.unlink()
        except FileNotFoundError:
            pass

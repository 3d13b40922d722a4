"""Keep the driver's own signal handlers while Ray starts and stops.

``ray.init`` in a driver replaces the SIGTERM handler twice (``ray/_private/worker.py`` ``init``:
``sys.exit(signum)``; ``ray/_private/node.py`` ``_register_shutdown_hooks``: kill Ray's processes,
``sys.exit(1)``), and the core worker it starts installs Abseil's failure-signal handler on
SIGTERM (``*** SIGTERM received ***``, then the process dies). A SIGTERM to ``disagg run`` on the
ray engine then killed it with nothing written. :func:`driver_signals_kept` stops Ray's Python
handlers from being set while Ray starts and puts the handlers that were in place back
afterwards (which also replaces Abseil's at the C level), so SIGTERM and SIGHUP do what SIGINT
does: the command's handler decides.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ray

KEPT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals whose driver handlers survive ``ray.init`` and ``ray.shutdown``."""


@contextmanager
def driver_signals_kept() -> Iterator[None]:
    """Within the block (``ray.init`` / ``ray.shutdown``), Ray sets no Python SIGTERM handler,
    and on leaving it the handlers of :data:`KEPT` are what they were before (main thread only:
    Python allows handlers nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in KEPT}
    utils: Any = getattr(getattr(ray, "_private", None), "utils", None)
    setter: Callable[[Any], None] | None = getattr(utils, "set_sigterm_handler", None)
    if setter is not None:
        utils.set_sigterm_handler = _not_set
    try:
        yield
    finally:
        if setter is not None:
            utils.set_sigterm_handler = setter
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _not_set(handler: Any) -> None:
    """Ray's SIGTERM handler, not installed (the driver's stays)."""

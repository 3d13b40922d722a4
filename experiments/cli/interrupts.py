"""Ctrl-C, SIGTERM and SIGHUP while a command runs: the first asks the run to stop and keep its results,
the second exits at once.

:func:`graceful_stop` installs the handlers for the duration of a command. The first signal sets
the :class:`~disagg.actors.engines.stop.StopFlag` the engines check between steps (arrivals stop,
unfinished requests end ``cancelled`` with the signal as reason, results so far are written, exit
130); the second raises ``KeyboardInterrupt`` at once, and the atomic writers leave either the
previous state or a complete folder behind.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from disagg.actors.engines.stop import StopFlag

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
_NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Handle SIGINT, SIGTERM and SIGHUP while the block runs; yields the flag the engines check."""
    flag = StopFlag()
    previous = {sig: signal.getsignal(sig) for sig in _NAMES}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.request(_NAMES.get(signal.Signals(signum), "interrupted"))
        sys.stderr.write(f"disagg: {flag.reason}: stopping and writing the results so far "
                         "(again to exit at once)\n")
        sys.stderr.flush()

    for sig in _NAMES:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

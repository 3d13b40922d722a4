"""A request to stop a run early, shared by the command line (which sets it on Ctrl-C or
SIGTERM) and the engines (which check it between steps and then end the run cleanly)."""

from __future__ import annotations


class StopFlag:
    """Set once, from a signal handler or another thread; ``reason`` says why. The flag is a
    plain bool, not a threading.Event: the virtual engine's loop reads it between every two
    steps (one Python call fewer each), and one bool written under the GIL is seen by every
    thread."""

    def __init__(self) -> None:
        self.requested = False
        """True once a stop was requested (set by :meth:`request`; an attribute, not a property:
        a property is a Python call per read)."""
        self.reason = ""

    def request(self, reason: str) -> None:
        """Ask the run to stop (the first reason given stands)."""
        if not self.requested:
            self.reason = reason
            self.requested = True


class StoppedBeforeStart(KeyboardInterrupt):
    """A stop was requested while the engine was still starting (Ray starting, actors being
    placed): the run ends before its first request, with nothing written. A
    ``KeyboardInterrupt``, so every command exits 130 the way a second Ctrl-C does."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason or 'interrupted'} during start-up: nothing was run or written")
        self.reason = reason

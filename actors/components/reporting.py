"""Load reports from a unit to the router, at most one per interval (emu seconds).

A unit calls :meth:`LoadReporter.changed` whenever its load changes. With ``interval_s`` 0 every
change is reported; otherwise one report goes out at once, further changes within the interval
are folded into one trailing report at the interval's end — so the router's view is never stale by
more than the interval, and a busy unit sends a bounded number of messages.

A unit may also :meth:`~LoadReporter.hold` a change and :meth:`~LoadReporter.flush` it before it
next waits: a newer change at the same modeled instant supersedes it, so the changes of one
instant go as one report (a prefill batch's end and the next batch's start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from disagg.cluster.component import Clock, Peer
from disagg.cluster.messages import LoadReport


class LoadReporter:
    """Rate-limits one unit's ``LoadReport`` messages."""

    def __init__(self, clock: Clock, interval_s: float, make: Callable[[float], LoadReport],
                 release_s: Callable[[float], float] | None = None) -> None:
        self.clock = clock
        # the unit's time gate (cluster/timegate.py): a trailing report for modeled ``due`` goes
        # at the unit's release time for ``due``, when its state is its modeled state at ``due``
        self.release_s = release_s
        self.interval_s = interval_s
        self.make = make
        self.router: Peer | None = None
        self.last_sent_s = float("-inf")
        self.sent = 0
        self._trailing: asyncio.TimerHandle | None = None
        self.held_s: float | None = None  # a change held back (emu s), not reported yet

    def hold(self, t: float) -> None:
        """The unit's load changed at emu time ``t``; report it (as :meth:`changed` would) at the
        next :meth:`flush`, unless a newer change supersedes it."""
        self.held_s = t

    def flush(self) -> None:
        """Report the change held back, if any (the unit is about to wait)."""
        if self.held_s is not None:
            self.changed(self.held_s)

    def changed(self, t: float) -> None:
        """The unit's load changed at emu time ``t``."""
        self.held_s = None
        if self.interval_s <= 0 or t - self.last_sent_s >= self.interval_s:
            self._send(t)
        elif self._trailing is None:
            due = self.last_sent_s + self.interval_s
            loop = self.clock.event_loop()
            at_s = due if self.release_s is None else self.release_s(due)
            self._trailing = loop.call_later(max(0.0, self.clock.loop_delay_s(at_s)),
                                             self._flush, due)

    def _flush(self, due: float) -> None:
        self._trailing = None
        self._send(due)

    def _send(self, t: float) -> None:
        assert self.router is not None, "connect the reporter to the router first"
        self.last_sent_s = t
        self.sent += 1
        self.router.send(self.make(t))

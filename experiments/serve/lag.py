"""The server's own timing honesty: how late it writes each token against its modeled time.

A token is due at ``wall = t0 + emu × dilation``; the server writes it at some later wall time
(the host is busy: the HTTP side, the emulator's actors and the clients share its cores). Each
release's lateness is compared with the modeled interval it belongs to (TTFT for the first
token, the inter-token gap for the others, in wall seconds at the dilation): beyond ``share``
(10 %) the client's measurement reflects the host more than the model, so the server logs one
warning line (at most one per ``every_s``) with a dilation that would bring it under, and counts
it (``disagg:client_lag_*`` series, experiments/serve/metrics.py). The lateness measured here is
the server's; a client on the same host adds its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LAG_SHARE = 0.10  # lateness beyond this share of the modeled interval is reported
WARN_EVERY_S = 30.0  # wall s between two warning lines

log = logging.getLogger("disagg.serve")


class LagMonitor:
    """Judges each release's lateness (wall s) against its modeled interval (emu s)."""

    def __init__(self, dilation: float, share: float = LAG_SHARE, every_s: float = WARN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dilation, self.share, self.every_s, self.clock = dilation, share, every_s, clock
        self._last_warning: float | None = None
        self.suggested_dilation = dilation  # the largest suggestion so far

    def over(self, late_s: float, modeled_s: float) -> bool:
        """True if ``late_s`` exceeds the share of the modeled interval (in wall s)."""
        wall = modeled_s * self.dilation
        return wall > 0 and late_s > self.share * wall

    def suggest(self, late_s: float, modeled_s: float) -> float:
        """The dilation at which this lateness would be ``share`` of the interval (the lateness
        is host time, so it stays while the modeled interval stretches)."""
        return late_s / (self.share * modeled_s)

    def observe(self, kind: str, late_s: float, modeled_s: float) -> str | None:
        """Judge one release; returns the warning line if one was logged now."""
        if not self.over(late_s, modeled_s):
            return None
        suggestion = self.suggest(late_s, modeled_s)
        self.suggested_dilation = max(self.suggested_dilation, suggestion)
        now = self.clock()
        if self._last_warning is not None and now - self._last_warning < self.every_s:
            return None
        self._last_warning = now
        line = (f"disagg serve: a token ({kind}) went out {late_s * 1e3:.1f} ms late, "
                f"{late_s / (modeled_s * self.dilation):.0%} of its modeled {kind} "
                f"({modeled_s * self.dilation * 1e3:.1f} wall ms at dilation "
                f"{self.dilation:g}); client timings measure this host: try --dilation "
                f"{self.suggested_dilation:.3g} or more")
        log.warning(line)
        return line

"""The server's own timing honesty: how late it writes each token against its modeled time.

A token is due at ``wall = t0 + emu × dilation``; the server writes it at some later wall time
(the host is busy: the HTTP side, the emulator's actors and the clients share its cores). What a
client measures is stretched by that lateness: its TTFT by the first token's lateness, an
inter-token gap by how much later its token is than the previous one (the pacer's ``late_s``).
Each first token is judged against its modeled TTFT; inter-token stretches are judged summed over
``ITL_WINDOW`` writes against the summed modeled gaps (single writes jitter by far more than a
0.5 ms CS-3 gap). Beyond ``share`` (10 %, in wall seconds at the dilation) the client's
measurement reflects the host more than the model, so the server counts it
(``disagg:client_lag_*`` series, experiments/serve/metrics.py) and logs one warning line (at most
one per ``every_s``) with a dilation that would bring it under. The lateness is the server's; a
client on the same host adds its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LAG_SHARE = 0.10  # lateness beyond this share of the modeled interval is reported
WARN_EVERY_S = 30.0  # wall s between two warning lines
ITL_WINDOW = 100  # inter-token writes judged together

log = logging.getLogger("disagg.serve")


class LagMonitor:
    """Judges each release's lateness (wall s) against its modeled interval (emu s)."""

    def __init__(self, dilation: float, share: float = LAG_SHARE, every_s: float = WARN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dilation, self.share, self.every_s, self.clock = dilation, share, every_s, clock
        self._last_warning: float | None = None
        self.suggested_dilation = dilation  # the largest suggestion so far
        self._itl = [0, 0.0, 0.0]  # writes, summed stretch (wall s), summed gaps (emu s)

    def judge(self, kind: str, late_s: float, modeled_s: float) -> tuple[float, float] | None:
        """The (lateness, modeled interval) to judge now: each TTFT at once, inter-token
        stretches once ``ITL_WINDOW`` writes are summed (None until then)."""
        if kind == "ttft":
            return late_s, modeled_s
        window = self._itl
        window[0] += 1
        window[1] += late_s
        window[2] += modeled_s
        if window[0] < ITL_WINDOW:
            return None
        self._itl = [0, 0.0, 0.0]
        return window[1], window[2]

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
        what = "a first token" if kind == "ttft" else f"{ITL_WINDOW} token writes"
        line = (f"disagg serve: {what} went out {late_s * 1e3:.1f} ms late in all, "
                f"{late_s / (modeled_s * self.dilation):.0%} of the modeled {kind} "
                f"({modeled_s * self.dilation * 1e3:.1f} wall ms at dilation "
                f"{self.dilation:g}); client timings measure this host: try --dilation "
                f"{self.suggested_dilation:.3g} or more")
        log.warning(line)
        return line

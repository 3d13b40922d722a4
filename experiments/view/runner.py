"""Show a run while it happens: the live dashboard on a terminal, plain progress lines elsewhere.

:func:`run_progress` is the reusable piece: a context manager that yields the progress callback
to hand to an engine (``run_experiment(..., progress=cb, live_s=live_interval(live))``). A rich
``Live`` pulls ``render(latest snapshot)`` from its own refresh thread about four times a second;
the engine replaces the latest snapshot once per collector poll. ``disagg run`` uses it, and a
multi-run command (``disagg compare``) can wrap each run in it to show the current run live.
The yielded callback's ``finish(summary)`` draws the last frame from the run's summary, so the
screen left behind agrees with the summary printed under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from disagg.cluster.config import Experiment
from disagg.experiments.view.console import plain_progress
from disagg.experiments.view.live_frame import final_snapshot, fit

LIVE_INTERVAL_S = 0.25  # wall seconds between unit state reports and collector polls when live
REFRESH_PER_S = 4.0  # dashboard redraws per wall second

Progress = Callable[[dict[str, Any]], None]


def run_info(exp: Experiment) -> dict[str, Any]:
    """The static part of the dashboard header for ``exp``."""
    e = exp.experiment
    return {"experiment": e.name, "engine": e.engine, "dilation": e.dilation,
            "horizon_s": e.duration_s}


class PlainProgress:
    """A plain line every few seconds (no escape codes); nothing more when the run ends."""

    def __init__(self, console: Console, exp: Experiment) -> None:
        self._show = plain_progress(console, exp)

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self._show(snapshot)

    def finish(self, summary: dict[str, Any]) -> None:
        """Nothing to redraw (the summary follows)."""


class LiveDashboard:
    """A rich Live display of the latest snapshot, fitted to the terminal; calling it (the
    engine's progress callback) takes a snapshot, ``finish`` the run's summary."""

    def __init__(self, console: Console, exp: Experiment, title: str = "") -> None:
        self.info = {**run_info(exp), **({"experiment": title} if title else {})}
        self.latest: dict[str, Any] = {"run": self.info, "now_s": 0.0}
        self.updates = 0
        self.console = console
        self.started = time.monotonic()
        self._live = Live(console=console, get_renderable=self._renderable,
                          refresh_per_second=REFRESH_PER_S, transient=False, redirect_stderr=False)

    def _renderable(self) -> RenderableType:
        snap = self.latest
        if self.updates == 0:  # no report yet: the engine is starting (Ray: 10-30 s)
            snap = {**snap, "starting_s": time.monotonic() - self.started}
        return fit(snap, self.console.width, self.console.height)

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self.update(snapshot)

    def update(self, snapshot: dict[str, Any]) -> None:
        """Take the engine's newest collector snapshot (the next refresh draws it)."""
        self.latest = {**snapshot, "run": self.info}
        self.updates += 1

    def finish(self, summary: dict[str, Any]) -> None:
        """Draw the last frame from the run's summary (counts, SLOs; every unit idle)."""
        self.latest = final_snapshot(self.latest, summary)
        self.updates += 1
        self._live.refresh()

    def __enter__(self) -> LiveDashboard:
        self._live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()
        if not self._live.console.is_terminal:
            self._live.console.line()  # rich ends the last frame with a newline only on terminals


def live_interval(live: bool) -> float:
    """Wall seconds between unit state reports for a run shown live (0 = no reports)."""
    return LIVE_INTERVAL_S if live else 0.0


@contextmanager
def run_progress(console: Console, exp: Experiment, live: bool, title: str = ""
                 ) -> Iterator[LiveDashboard | PlainProgress]:
    """The progress callback for one run: the live dashboard if ``live``, else a plain line every
    few seconds (no escape codes). ``title`` replaces the experiment name in the header."""
    if not live:
        yield PlainProgress(console, exp)
        return
    with LiveDashboard(console, exp, title) as dashboard:
        yield dashboard

"""Show a run while it happens: the live dashboard on a terminal, plain progress lines elsewhere.

:func:`run_progress` is the reusable piece: a context manager that yields the progress callback
to hand to an engine (``run_experiment(..., progress=cb, live_s=live_interval(live))``). A rich
``Live`` pulls ``render(latest snapshot)`` from its own refresh thread about four times a second;
the engine replaces the latest snapshot once per collector poll. ``disagg run`` uses it, and a
multi-run command (``disagg compare``) can wrap each run in it to show the current run live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from disagg.cluster.config import Experiment
from disagg.experiments.view.console import plain_progress
from disagg.experiments.view.live import render

LIVE_INTERVAL_S = 0.25  # wall seconds between unit state reports and collector polls when live
REFRESH_PER_S = 4.0  # dashboard redraws per wall second

Progress = Callable[[dict[str, Any]], None]


def run_info(exp: Experiment) -> dict[str, Any]:
    """The static part of the dashboard header for ``exp``."""
    e = exp.experiment
    return {"experiment": e.name, "engine": e.engine, "dilation": e.dilation,
            "horizon_s": e.duration_s}


class LiveDashboard:
    """A rich Live display of the latest snapshot; ``update`` is the engine's progress callback."""

    def __init__(self, console: Console, exp: Experiment, title: str = "") -> None:
        self.info = {**run_info(exp), **({"experiment": title} if title else {})}
        self.latest: dict[str, Any] = {"run": self.info, "now_s": 0.0}
        self.updates = 0
        self._live = Live(console=console, get_renderable=self._renderable,
                          refresh_per_second=REFRESH_PER_S, transient=False, redirect_stderr=False)

    def _renderable(self) -> RenderableType:
        return render(self.latest)

    def update(self, snapshot: dict[str, Any]) -> None:
        """Take the engine's newest collector snapshot (the next refresh draws it)."""
        self.latest = {**snapshot, "run": self.info}
        self.updates += 1

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
                 ) -> Iterator[Progress]:
    """The progress callback for one run: the live dashboard if ``live``, else a plain line every
    few seconds (no escape codes). ``title`` replaces the experiment name in the header."""
    if not live:
        yield plain_progress(console, exp)
        return
    with LiveDashboard(console, exp, title) as dashboard:
        yield dashboard.update

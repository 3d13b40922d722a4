"""Live state reports: what each component tells the collector so that one snapshot call shows the
whole cluster (the live view, ``experiments/view/live.py``).

A report is the component's own ``snapshot()`` dict plus the latency facts it learned since its
previous report (first tokens from prefill units, last tokens from decode units) and its recent
emulator lag. The engine takes a report at most every live interval of wall time and sends it only
if something changed — never a message per token or per request. The collector folds reports into
a :class:`~disagg.actors.components.live_aggregate.LiveAggregator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from disagg.cluster.component import Component

LAG_TAIL = 256  # how many of a component's most recent lags its reported lag p99 covers


@dataclass(frozen=True, slots=True)
class StateReport:
    """Component -> collector: its live state at emu time ``sent_s``.

    ``state``: the component's ``snapshot()`` dict. ``finished``: latency facts since the previous
    report, ``("first", request_id, arrival_s, first_token_s, ttft_slo_s, output_tokens)`` from a
    prefill unit or ``("last", request_id, last_token_s, output_tokens, tpot_slo_s)`` from a
    decode unit. ``lag_p99_s``: p99 of the component's last ``LAG_TAIL`` lags, emu s.
    """

    unit: str
    state: dict[str, Any]
    finished: tuple[tuple[Any, ...], ...]
    lag_p99_s: float
    sent_s: float


def enable_live_feed(component: Component) -> None:
    """Make a unit keep the latency facts its next reports carry (units without a feed ignore it)."""
    if hasattr(component, "live_feed"):
        component.live_feed = []  # type: ignore[attr-defined]


class LiveReporter:
    """Takes one component's reports; remembers the last state sent and its lag p99."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self.last_state: dict[str, Any] | None = None
        self._lag = (0, 0.0)  # (number of lags it covers, p99 emu s)
        enable_live_feed(component)

    def _lag_p99_s(self) -> float:
        c = self.component
        if c.acts != self._lag[0]:
            tail = list(c.recent_lags_s)[-LAG_TAIL:]
            self._lag = (c.acts, float(np.percentile(tail, 99)) if tail else 0.0)
        return self._lag[1]

    def next_report(self) -> StateReport | None:
        """A report if the state changed or the component learned latency facts, else None."""
        c = self.component
        state = c.snapshot()
        feed: list[tuple[Any, ...]] | None = getattr(c, "live_feed", None)
        finished = tuple(feed) if feed else ()
        if feed:
            feed.clear()
        if state == self.last_state and not finished:
            return None
        self.last_state = state
        return StateReport(c.name, state, finished, self._lag_p99_s(), c.clock.now())

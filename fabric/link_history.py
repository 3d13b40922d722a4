"""The fabric's history of its links: each link's rate (bytes/s) and active flows as transfers
come and go, binned on the run's timeseries grid (``timeseries.parquet``'s link rows) and, when
the run keeps an event log (``output.event_log``), as one entry per change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from disagg.cluster.timeseries import BinnedIntegral, SteppedValues, final_bins
from disagg.fabric.flows import IDLE

Link = tuple[str, str]  # (host or "core", side)


@dataclass(slots=True)
class _LinkSeries:
    """One link's history on the timeseries grid (``name``: ``host/side``): its active flows and
    the bytes it carried per bin, and the rate (bytes/s) it has carried since ``since_s`` (emu s)."""

    name: str
    flows: SteppedValues
    carried: BinnedIntegral
    since_s: float = 0.0
    rate: float = 0.0


class LinkHistory:
    """Every link's (rate, flows) over emu time, from the network's link loads after each change
    (:meth:`record`); ``capacity``: bytes/s per link name (``host/side``)."""

    def __init__(self, capacity: Mapping[Link, float], step_s: float,
                 keep_events: bool = False) -> None:
        self.step_s = step_s
        self.capacity = {f"{k[0]}/{k[1]}": v for k, v in capacity.items()}
        # (bytes/s, flows) last recorded per link, for the links whose last entry is not zero:
        # the network's link loads as they were at the last record
        self._last_loads: Mapping[Any, tuple[float, int]] = {}
        self._order = {link: i for i, link in enumerate(capacity)}
        # (t, link, bytes/s, flows) per change, kept only for the event log (output.event_log)
        self.log: list[tuple[float, str, float, int]] | None = [] if keep_events else None
        self._series = {link: _LinkSeries(f"{link[0]}/{link[1]}", SteppedValues(step_s, 1),
                                          BinnedIntegral(step_s))
                        for link in capacity}
        self.flows = {s.name: s.flows for s in self._series.values()}  # active flows per bin
        self.carried = {s.name: s.carried for s in self._series.values()}  # bytes per bin

    def record(self, t: float, loads: Mapping[Any, tuple[float, int]]) -> None:
        """The network's link loads (``FluidNetwork.link_loads``) from emu time ``t``: each link
        whose (rate, flows) changed goes into its bins (and the event log, in topology order;
        each link's series is its own, so without a log the order does not matter). Only links
        that carry something now or did at their last entry can have changed."""
        # the network hands out one mapping per mix of routes and rates: the same one again
        # (a transfer ended and one on the same route started) means no link changed
        last = self._last_loads
        if loads is last:
            return
        self._last_loads = loads
        changed = [link for link in last if link not in loads]
        for link, load in loads.items():
            if last.get(link) != load:
                changed.append(link)
        log, series_of = self.log, self._series
        if log is not None:
            changed.sort(key=self._order.__getitem__)
        for link in changed:
            rate, flows = loads.get(link, IDLE)  # (0.0, 0): it carries nothing any more
            # the link's change folded in here, not in a method: ~47k link changes a run
            series = series_of[link]
            if log is not None:
                log.append((t, series.name, rate, flows))
            if series.rate:  # a zero rate adds nothing
                series.carried.interval(series.since_s, t, series.rate)
            if t > series.since_s:  # max(series.since_s, t), without the call
                series.since_s = t
            series.rate = rate
            series.flows.change(t, flows)

    def drain(self, frontier: float) -> list[dict[str, Any]]:
        """Every link's bins that end before emu time ``frontier`` (nothing changes before it any
        more), as ``timeseries.parquet`` rows of plain data, handed out and forgotten here."""
        k = final_bins(frontier, self.step_s)
        out = []
        for series in self._series.values():
            first = series.flows.base
            if k <= first:
                continue
            if frontier > series.since_s:  # the current rate carries on to the frontier
                series.carried.interval(series.since_s, frontier, series.rate)
                series.since_s = frontier
            out.append({"entity": series.name, "kind": "link", "step_s": self.step_s,
                        "first_bin": first, "bytes": series.carried.pop_before(k),
                        "flows": series.flows.pop_before(k)[0],
                        "capacity": self.capacity[series.name]})
        return out

    def state(self) -> dict[str, Any]:
        """What the timeseries needs of the links (they are sampled once the grid is known)."""
        return {"step_s": self.step_s, "flows": self.flows, "bytes": self.carried,
                "rate": {s.name: (s.since_s, s.rate) for s in self._series.values()}}

"""A fluid model of flows sharing links under max-min fairness.

Each flow crosses a set of links (egress NIC, optional core, ingress NIC). Between events every
flow moves at a constant rate; rates are recomputed by progressive filling whenever a flow starts
or ends, so a flow's completion time moves as others come and go. Bytes and seconds throughout.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from disagg.cluster.component import TIME_EPS_S

Link = Hashable
INF = float("inf")
_EPS_BYTES = 1e-6
IDLE = (0.0, 0)
"""(bytes/s, flows) of a link that carries nothing."""
_TIME_RESOLUTION = 1e-12  # relative: seconds of slack per second of clock when checking ends
_RATES_KEPT = 4096  # flow mixes whose max-min rates a network remembers (then it starts again)


def max_min_rates(
    flows: Mapping[int, tuple[Link, ...]],
    capacity: Mapping[Link, float],
    per_flow_cap: float = INF,
) -> dict[int, float]:
    """Max-min fair rate (bytes/s) of each flow; a flow that crosses no link gets the cap."""
    if len(flows) == 1:
        ((fid, links),) = flows.items()
        return {fid: alone_rate(links, capacity, per_flow_cap)}
    rates: dict[int, float] = {}
    remaining = {link: capacity[link] for links in flows.values() for link in links}
    active = dict(flows)
    while active:
        counts: dict[Link, int] = {}
        for links in active.values():
            for link in links:
                counts[link] = counts.get(link, 0) + 1
        shares = {link: remaining[link] / n for link, n in counts.items()}
        share = min(shares.values(), default=INF)
        level = min(share, per_flow_cap)
        if level == INF:
            rates.update(dict.fromkeys(active, level))
            break
        if per_flow_cap <= share:
            frozen = list(active)
        else:  # the flows that cross a link whose share is (within rounding) the level
            tight = level * (1 + 1e-12)
            frozen = []
            for f, links in active.items():
                for link in links:
                    if shares[link] <= tight:
                        frozen.append(f)
                        break
        for f in frozen:
            rates[f] = level
            for link in active.pop(f):
                remaining[link] = max(0.0, remaining[link] - level)
    return rates


def alone_rate(links: tuple[Link, ...], capacity: Mapping[Link, float], per_flow_cap: float) -> float:
    """The max-min rate (bytes/s) of a flow alone in the network: its slowest link's capacity
    (over the times it crosses it), at most the cap — what :func:`max_min_rates` gives it."""
    share = INF
    for link in links:
        link_share = capacity[link] / links.count(link)
        if link_share < share:
            share = link_share
    return share if share < per_flow_cap else per_flow_cap


@dataclass(slots=True)
class _Flow:
    links: tuple[Link, ...]
    size_bytes: float
    left_bytes: float
    rate: float = 0.0


class FluidNetwork:
    """Flows in progress on a set of links; advance time, add flows, find the next completion.

    The next completion is computed once per change of the flows (add, finish, backdate, a
    link's capacity) and kept until the next one: between changes it cannot move. The max-min
    rates of each mix of routes (the flows' links, in the order the flows started), and the
    link loads they make, are computed once per capacity setting: they depend on nothing else,
    and a run sees few mixes (the Mooncake trace: ~200 in ~15,000 rebalances)."""

    def __init__(self, capacity: Mapping[Any, float], per_flow_cap: float = INF) -> None:
        self.capacity = dict(capacity)
        self.per_flow_cap = per_flow_cap
        self.now_s = 0.0
        self._flows: dict[int, _Flow] = {}
        self._next: tuple[float, int] | None = None  # the next completion, when not _stale
        self._stale = False
        # by mix: the flows' max-min rates (in start order) and the links' loads they make
        self._rates: dict[tuple[tuple[Link, ...], ...], _MixRates] = {}
        self._loads: Mapping[Link, tuple[float, int]] = {}  # the current mix's link loads

    def __len__(self) -> int:
        return len(self._flows)

    def advance(self, t: float) -> None:
        """Move every flow forward at its current rate to time ``t``."""
        dt = t - self.now_s
        if dt < -TIME_EPS_S:
            raise ValueError(f"time moves backwards: {t} < {self.now_s}")
        if dt > 0:
            for flow in self._flows.values():
                flow.left_bytes = max(0.0, flow.left_bytes - flow.rate * dt)
            self.now_s = t
            self._stale = True

    def add(self, flow_id: int, links: tuple[Link, ...], size_bytes: float, t: float) -> None:
        """Start a flow of ``size_bytes`` at time ``t`` (>= the network's current time)."""
        for link in links:
            if link not in self.capacity:
                raise KeyError(f"unknown link {link!r}")
        self.advance(t)
        self._flows[flow_id] = _Flow(links, size_bytes, size_bytes)
        self._rebalance()

    def backdate(self, flow_id: int, seconds: float) -> float:
        """Credit a flow just added with what it would have sent in the ``seconds`` before it was
        added, at its current rate (the other flows are not slowed retroactively). Returns how
        long before now it would have finished (0 if it still has bytes left)."""
        flow = self._flows[flow_id]
        if seconds <= 0 or flow.rate <= 0:
            return 0.0
        sent = min(flow.left_bytes, flow.rate * seconds)
        flow.left_bytes -= sent
        self._stale = True
        if flow.left_bytes > 0:
            return 0.0
        return seconds - flow.size_bytes / flow.rate

    def next_completion(self) -> tuple[float, int] | None:
        """(time, flow id) of the next flow to finish at current rates, or None when idle."""
        if self._stale:
            self._next = self._first_completion()
            self._stale = False
        return self._next

    def _first_completion(self) -> tuple[float, int] | None:
        best: tuple[float, int] | None = None
        for fid, flow in self._flows.items():
            if flow.left_bytes > 0 and flow.rate <= 0:
                continue  # stalled on a cut link
            t = self.now_s + (flow.left_bytes / flow.rate if flow.left_bytes > 0 else 0.0)
            if best is None or (t, fid) < best:
                best = (t, fid)
        return best

    def set_capacity(self, link: Link, bytes_per_s: float, t: float) -> None:
        """From time ``t`` ``link`` carries ``bytes_per_s`` (0 stalls its flows); rebalance."""
        if link not in self.capacity:
            raise KeyError(f"unknown link {link!r}")
        self.advance(t)
        self.capacity[link] = bytes_per_s
        self._rates.clear()  # worked out for the old capacity
        self._rebalance()

    def finish(self, flow_id: int, t: float) -> None:
        """Remove a flow that completes at ``t`` and rebalance the others."""
        self.advance(t)
        flow = self._flows.pop(flow_id)
        if flow.left_bytes > _EPS_BYTES + 1e-9 * flow.size_bytes and not self._due(flow, t):
            raise RuntimeError(f"flow {flow_id} finished with {flow.left_bytes} bytes left")
        self._rebalance()

    @staticmethod
    def _due(flow: _Flow, t: float) -> bool:
        """True if what is left would take under the time resolution at ``t`` (float rounding of
        event times, ~1e-16 x t, times a fast link's rate can exceed any fixed byte tolerance);
        a flow that crosses no link and has no cap (rate inf) is always due."""
        return flow.left_bytes <= flow.rate * _TIME_RESOLUTION * max(1.0, abs(t))

    def link_rates(self) -> dict[Any, float]:
        """Bytes/s crossing each link right now."""
        out = {link: 0.0 for link in self.capacity}
        for flow in self._flows.values():
            for link in flow.links:
                out[link] += flow.rate
        return out

    def link_loads(self) -> Mapping[Any, tuple[float, int]]:
        """(bytes/s, flows) on each link that carries a flow (the others carry (0.0, 0)), the
        rates summed in the order the flows started: worked out once per mix of routes with its
        rates (they depend on nothing else), so this is a lookup (the network's own mapping:
        read it, do not change it)."""
        return self._loads

    def _rebalance(self) -> None:
        """Every flow's max-min rate (bytes/s) after a change of the flows or a capacity."""
        self._stale = True
        flows = self._flows
        if not flows:
            self._loads = {}
            return
        mix = tuple(f.links for f in flows.values())
        known = self._rates.get(mix)
        if known is None:  # max_min_rates depends on the flows' order, not on their ids
            by_index = max_min_rates(dict(enumerate(mix)), self.capacity, self.per_flow_cap)
            if len(self._rates) >= _RATES_KEPT:
                self._rates.clear()
            rates = tuple(by_index[i] for i in range(len(mix)))
            known = self._rates[mix] = _MixRates(rates, _loads_of(mix, rates))
        for flow, rate in zip(flows.values(), known.rates, strict=True):
            flow.rate = rate
        self._loads = known.loads


@dataclass(frozen=True, slots=True)
class _MixRates:
    """A mix of routes' max-min rates (bytes/s, in the flows' start order) and the (bytes/s,
    flows) they put on each link they cross."""

    rates: tuple[float, ...]
    loads: Mapping[Link, tuple[float, int]]


def _loads_of(mix: tuple[tuple[Link, ...], ...],
              rates: tuple[float, ...]) -> dict[Link, tuple[float, int]]:
    """(bytes/s, flows) on each link crossed by flows on routes ``mix`` at ``rates``, the rates
    summed in the flows' order."""
    loads: dict[Link, tuple[float, int]] = {}
    for links, flow_rate in zip(mix, rates, strict=True):
        for link in links:
            rate, n = loads.get(link, IDLE)
            loads[link] = (rate + flow_rate, n + 1)
    return loads

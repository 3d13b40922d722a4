"""The collector's live picture of the cluster, folded from components' state reports.

Rates (tokens/s, utilization, link throughput) are taken over a window that spans the last few
snapshot calls in emu time, so they adapt to any dilation and to the virtual engine, and fall to
zero for a unit that stopped reporting because nothing changed. Latencies are joined per request
from a prefill unit's first token and a decode unit's last token; the SLO figures cover the most
recent ``window`` completions.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from disagg.actors.components.live_state import StateReport
from disagg.cluster.component import TIME_EPS_S

RATE_CALLS = 4  # rates span at least the emu time of the last this-many snapshot calls


class _Samples:
    """One unit's recent ``(emu s, tokens done, busy s)`` samples."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, float, float]] = deque()

    def add(self, t: float, tokens: float, busy_s: float) -> None:
        self.points.append((t, tokens, busy_s))

    def rates(self, now_s: float, since_s: float) -> tuple[float, float]:
        """(tokens/s, busy fraction) from the last sample at or before ``since_s`` to the latest."""
        while len(self.points) > 1 and self.points[1][0] <= since_s:
            self.points.popleft()
        if not self.points:
            return 0.0, 0.0
        t0, tok0, busy0 = self.points[0]
        _, tok1, busy1 = self.points[-1]
        span = now_s - t0
        if span <= TIME_EPS_S:
            return 0.0, 0.0
        return (tok1 - tok0) / span, min(1.0, max(0.0, (busy1 - busy0) / span))


class LiveAggregator:
    """Latest state per component, per-unit rates, rolling SLO figures, a throughput history."""

    def __init__(self, window: int = 500, history: int = 60) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.lag_p99_s: dict[str, float] = {}
        self._samples: dict[str, _Samples] = {}
        self._firsts: dict[int, tuple[float, float, float, int]] = {}
        self._lasts: dict[int, tuple[float, int, float]] = {}
        self._gone: set[int] = set()  # ended without completing before their first fact came
        self.recent: deque[tuple[float, float, bool]] = deque(maxlen=window)  # ttft, tpot, met
        self.met = 0
        self.window = window
        self.throughput: deque[float] = deque(maxlen=history)
        self._calls: deque[float] = deque(maxlen=RATE_CALLS + 1)

    def add(self, report: StateReport) -> None:
        """Fold one state report in."""
        state = report.state
        self.states[report.unit] = state
        self.lag_p99_s[report.unit] = report.lag_p99_s
        if "tokens_done" in state:
            self._samples.setdefault(report.unit, _Samples()).add(
                report.sent_s, float(state["tokens_done"]), float(state.get("busy_s", 0.0)))
        for link, (moved_bytes, _) in state.get("links", {}).items():
            self._samples.setdefault("link:" + link, _Samples()).add(report.sent_s, moved_bytes, 0.0)
        for fact in report.finished:
            if fact[0] == "first":
                self._on_first(*fact[1:])
            else:
                self._on_last(*fact[1:])

    def forget(self, request_id: int, first_made: bool = False) -> None:
        """A request ended without completing: drop its half-joined latency facts. With
        ``first_made`` (its prefill made the first token) and no first fact yet while units
        report (a live run), that fact is still on its way: a unit's state report goes out
        every live interval, and can come after the end. It is dropped when it comes, not kept
        for the rest of the run."""
        if self._firsts.pop(request_id, None) is None and first_made and self.states:
            self._gone.add(request_id)
        self._lasts.pop(request_id, None)

    def _on_first(self, rid: int, arrival_s: float, first_s: float, ttft_slo_s: float,
                  output_tokens: int) -> None:
        if rid in self._gone:
            self._gone.discard(rid)
            return
        self._firsts[rid] = (arrival_s, first_s, ttft_slo_s, output_tokens)
        if output_tokens <= 1:
            self._complete(rid, first_s, 0.0)
        elif rid in self._lasts:
            last_s, _, tpot_slo_s = self._lasts.pop(rid)
            self._complete(rid, last_s, tpot_slo_s)

    def _on_last(self, rid: int, last_s: float, output_tokens: int, tpot_slo_s: float) -> None:
        if rid in self._firsts:
            self._complete(rid, last_s, tpot_slo_s)
        else:
            self._lasts[rid] = (last_s, output_tokens, tpot_slo_s)

    def _complete(self, rid: int, last_s: float, tpot_slo_s: float) -> None:
        arrival_s, first_s, ttft_slo_s, output_tokens = self._firsts.pop(rid)
        ttft = first_s - arrival_s
        tpot = (last_s - first_s) / (output_tokens - 1) if output_tokens > 1 else 0.0
        met = ttft <= ttft_slo_s + TIME_EPS_S and (output_tokens <= 1 or tpot <= tpot_slo_s + TIME_EPS_S)
        self.met += int(met)
        self.recent.append((ttft, tpot, met))

    def snapshot(self, now_s: float) -> dict[str, Any]:
        """The live picture at emu time ``now_s`` (plain data, as the live view renders it)."""
        self._calls.append(now_s)
        since = self._calls[0] if len(self._calls) > 1 else now_s
        units: dict[str, list[dict[str, Any]]] = {"prefill": [], "decode": [], "colocated": []}
        total_decode_rate = 0.0
        for name in sorted(self.states, key=lambda n: _unit_order(self.states[n], n)):
            kind = self.states[name].get("kind")
            if kind not in units:
                continue
            rate, util = self._samples[name].rates(now_s, since) if name in self._samples else (0, 0)
            units[kind].append({**self.states[name], "tokens_per_s": rate, "utilization": util})
            total_decode_rate += rate if kind in ("decode", "colocated") else 0.0
        self.throughput.append(total_decode_rate)
        return {
            "units": units, "fabric": self._fabric(now_s, since),
            "loadgen": self.states.get("loadgen", {}), "router": self.states.get("router", {}),
            "slo": self._slo(now_s), "lag_p99_s": max(self.lag_p99_s.values(), default=0.0),
            "throughput": list(self.throughput),
        }

    def _fabric(self, now_s: float, since: float) -> dict[str, Any]:
        fabric = dict(self.states.get("fabric", {}))
        links = []
        for link, (moved, cap) in fabric.pop("links", {}).items():
            rate = self._samples["link:" + link].rates(now_s, since)[0]
            links.append({"name": link, "bytes_per_s": rate, "capacity_bytes_per_s": cap,
                          "bytes_moved": moved})
        return {**fabric, "links": links}

    def _slo(self, now_s: float) -> dict[str, Any]:
        out: dict[str, Any] = {"window": len(self.recent), "met": self.met,
                               "goodput_per_s": self.met / now_s if now_s > 0 else 0.0}
        if not self.recent:
            return out
        arr = np.array([(a, b, c) for a, b, c in self.recent], dtype=np.float64)
        for col, key in ((0, "ttft"), (1, "tpot")):
            out[f"{key}_p50_s"], out[f"{key}_p99_s"] = (float(v) for v in
                                                        np.percentile(arr[:, col], [50, 99]))
        out["attainment"] = float(arr[:, 2].mean())
        return out


def _unit_order(state: dict[str, Any], name: str) -> tuple[str, int, str]:
    """Units by kind and index (their snapshots carry both), other components by name."""
    return (str(state.get("kind", "")), int(state.get("index", -1)), name)

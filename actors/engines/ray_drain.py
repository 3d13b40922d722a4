"""The ray engine's draining: finished rows from the collector's actor (transfers with their Ray
nodes) and every live actor's final timeseries bins into the results sink, the components'
results gathered in one call, and the transports flushed before the final drain."""

from __future__ import annotations

import time
from typing import Any

import ray

from disagg.actors.components.collector import Drained, EndedIds
from disagg.actors.engines.engine import Sink
from disagg.actors.engines.roles import LedgerFacade
from disagg.actors.engines.supervisor import ComponentLost
from disagg.cluster.messages import Request, RequestsEnded
from disagg.cluster.records import EndRecord
from disagg.cluster.rows import fold, with_nodes

GATHER_TIMEOUT_S = 60.0  # wall seconds the surviving actors get to hand over their results
SERIES_WAIT_S = 1.0  # wall seconds a poll's drain waits for the actors' timeseries bins (a slow
# actor's bins come with a later drain; a hung one must not hold up the supervisor's loop)


class Drainer:
    """Drains the collector's finished rows (transfers with their Ray nodes) and the
    components' final timeseries bins into ``sink``; the router forgets the requests that ended.
    A unit lost meanwhile contributes no bins this time (the supervisor notices it)."""

    def __init__(self, handles: dict[str, Any], nodes: dict[str, str], sink: Sink, t0: float,
                 dilation: float, lost: dict[str, str]) -> None:
        self.handles, self.nodes, self.sink = handles, nodes, sink
        self.t0, self.dilation, self.lost = t0, dilation, lost
        self.written = EndedIds()  # request ids whose rows went to the sink
        self._asked: dict[int, Any] = {}  # id(actor handle) -> its unanswered drain_series call

    def __call__(self, final: bool = False, unfinished: tuple[str, str] | None = None,
                 arrivals: tuple[Request, ...] = ()) -> None:
        try:
            drained = LedgerFacade(self.handles["collector"]).drain(final, unfinished, arrivals)
        except ray.exceptions.RayActorError as e:
            raise ComponentLost("collector", type(e).__name__) from None
        if drained.ended_ids and "router" not in self.lost:
            self.handles["router"].deliver.remote(
                RequestsEnded(tuple(drained.ended_ids), (time.time() - self.t0) / self.dilation),
                "router")
        with_nodes(drained.transfers, self.nodes)
        self._out(drained, final)

    def without_collector(self, requests: tuple[Request, ...],
                          unfinished: tuple[str, str] | None) -> None:
        """The collector was lost: a row for each of ``requests`` not yet written, ended with
        ``unfinished`` (what the collector held of them went with it)."""
        status, reason = unfinished or ("failed", "emulator_component_lost")
        rows = [fold([r], EndRecord(r.request_id, status, reason, None, r.attempt + 1))
                for r in requests if r.request_id not in self.written]
        self._out(Drained(rows=rows))

    def _out(self, drained: Drained, final: bool = False) -> None:
        drained.series = self._series(final)
        for row in drained.rows:
            self.written.add(row["request_id"])
        self.sink(drained)

    def _series(self, final: bool) -> list[dict[str, Any]]:
        """The live actors' timeseries bins. One call per actor is outstanding at a time: a
        poll waits ``SERIES_WAIT_S`` and an actor that has not answered (busy, or hung until the
        supervisor declares it lost) is asked again once it has; the final drain waits for every
        outstanding call, then asks every actor once more."""
        live = {id(h): h for h in live_actors(self.handles, self.lost).values()}
        self._asked = {k: ref for k, ref in self._asked.items() if k in live}  # lost: dropped
        bins = self._harvest(GATHER_TIMEOUT_S if final else SERIES_WAIT_S)
        for key, handle in live.items():
            if key not in self._asked:
                self._asked[key] = handle.drain_series.remote()
        return bins + self._harvest(GATHER_TIMEOUT_S if final else SERIES_WAIT_S)

    def _harvest(self, timeout_s: float) -> list[dict[str, Any]]:
        refs = list(self._asked.values())
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        done = set(ready)
        bins: list[dict[str, Any]] = []
        for key, ref in list(self._asked.items()):
            if ref in done:
                del self._asked[key]
                try:
                    bins.extend(ray.get(ref, timeout=0))
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    pass  # a unit lost: its bins not yet handed over are a gap in the timeseries
        return bins


def live_actors(handles: dict[str, Any], lost: dict[str, str]) -> dict[str, Any]:
    """One handle per actor (by the first live component it hosts) among those not lost."""
    out: dict[str, Any] = {}
    seen: set[Any] = set()
    for name, handle in handles.items():
        if name not in lost and handle not in seen:
            seen.add(handle)
            out[name] = handle
    return out


def gather_results(handles: dict[str, Any], lost: dict[str, str]
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """Every surviving component's results, fetched together, and the components found lost
    only now (every component of an actor that did not answer, recorded in ``lost`` too)."""
    names = list(live_actors(handles, lost))
    refs = [handles[n].results.remote() for n in names]
    ray.wait(refs, num_returns=len(refs), timeout=GATHER_TIMEOUT_S)
    parts: list[dict[str, Any]] = []
    gone: list[str] = []
    for name, ref in zip(names, refs, strict=True):
        try:
            parts.extend(ray.get(ref, timeout=0))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            gone += [n for n, h in handles.items() if h == handles[name] and n not in lost]
    for name in gone:
        lost[name] = "lost before results were gathered"
    return parts, gone


def flush_transports(handles: dict[str, Any], lost: dict[str, str]) -> None:
    """Every live actor sends what its transport holds and waits until the collector handled
    it, so that the final drain (called after this) carries every record."""
    refs = [h.flush.remote() for h in live_actors(handles, lost).values()]
    ray.wait(refs, num_returns=len(refs), timeout=GATHER_TIMEOUT_S)

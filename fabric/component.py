"""The fabric component: KV transfers as flows on the EFA model, delivered at modeled times.

A transfer starts at its request's modeled time plus the per-transfer setup cost, shares link
bandwidth max-min fairly with the flows in progress (rates recomputed as flows come and go), and is
delivered to the decode unit one link latency after its last byte leaves — never earlier in emu
time than that. Events are processed in modeled-time order whatever the wall-clock wake-up.

Layer-wise streaming (``FabricConfig.layer_wise``): the prefill unit hands the transfer over when
its prefill starts, with the prefill's (start, end); the KV is split into ``layer_chunks`` equal
chunks (default one per model layer), chunk i becoming ready at start + (i + 1)/n x (end - start).
The transfer is one flow that sends its chunks in order: a chunk leaves once it is ready and the
previous one has left, so the flow pauses (leaves the network) while it waits for the prefill,
and the last byte cannot leave before the prefill ends.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Any

from disagg.cluster.component import SERIES_MARGIN_S, Clock, Component
from disagg.cluster.config import FabricConfig
from disagg.cluster.messages import KvDelivered, KvPrefetch, LinkScaled, TransferRequested
from disagg.cluster.records import TransferRecord
from disagg.fabric.flows import FluidNetwork
from disagg.fabric.link_history import LinkHistory
from disagg.fabric.payload import KvMarker
from disagg.fabric.topology import Route, Topology, route_of
from disagg.fabric.transfers import Transfer, chunk_ready_times

INF = float("inf")


class Fabric(Component):
    """Moves KV payload references between units at the modeled speed of the network. With a
    hold (ray engine) it acts on an event at modeled ``t`` at its gate's release time, after the
    router's, so transfer requests that lag behind the router's decisions need no backdating;
    whether one that comes later still is backdated is the gate's rule (``may_backdate``)."""

    def __init__(
        self, name: str, clock: Clock, topology: Topology, config: FabricConfig,
        control_delay_s: float = 0.0, layers: int = 1, sample_interval_s: float = 0.5,
        keep_events: bool = False,
    ) -> None:
        super().__init__(name, clock)
        self.topology = topology
        self.config = config
        self.control_delay_s = control_delay_s
        self.chunks = config.layer_chunks or layers
        cap = INF if config.per_flow_cap_gbps is None else config.per_flow_cap_gbps * 1e9 / 8
        self.net = FluidNetwork(topology.capacity, cap)
        self._starts: list[tuple[float, int]] = []  # (chunk may leave at, transfer seq)
        self._link_changes: list[tuple[float, int, LinkScaled]] = []  # injected link faults
        self._transfers: dict[int, Transfer] = {}
        self._routes: dict[tuple[str, str], Route] = {}  # made once per unit pair
        self._seq = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None  # for the next event
        self._aim_s = INF  # the release time (loop s) the timer is set for
        self._failure: asyncio.Future[None] | None = None  # set by run
        self.links = LinkHistory(topology.capacity, sample_interval_s, keep_events)
        self.bytes_moved = 0.0
        self.link_bytes: dict[Any, float] = {}  # modeled bytes of finished transfers per link
        self.handlers = {TransferRequested: self._on_transfer, LinkScaled: self._on_link_scaled}

    def _on_link_scaled(self, msg: LinkScaled) -> None:
        """An injected link fault: from ``sent_s`` (it may arrive early) the link's capacity is
        nominal x ``factor`` (0 = cut)."""
        self._seq += 1
        heapq.heappush(self._link_changes, (msg.sent_s, self._seq, msg))
        self._aim()

    def _do_link(self, t: float) -> None:
        _, _, msg = heapq.heappop(self._link_changes)
        host, _, side = msg.link.partition("/")
        link = ("core", "core") if msg.link == "core" else (host, side)
        t = max(t, self.net.now_s)
        self.net.set_capacity(link, self.topology.capacity[link] * msg.factor, t)
        self.links.record(t, self.net.link_loads())

    def _on_transfer(self, msg: TransferRequested) -> None:
        start = msg.sent_s + self.control_delay_s + self.config.setup_s
        window = msg.layers_ready_s if self.config.layer_wise else None
        chunks = 1 if window is None else self.chunks
        self._seq += 1
        ready = chunk_ready_times(start, window, chunks)
        pair = (msg.src_unit, msg.dst_unit)
        if pair not in self._routes:
            self._routes[pair] = route_of(self.topology, *pair, self.config.latency_s)
        self._transfers[self._seq] = Transfer(msg, self._routes[pair], msg.kv_bytes / chunks,
                                               ready)
        heapq.heappush(self._starts, (ready[0], self._seq))
        self._aim()

    def _next_event(self) -> tuple[float, Callable[[float], None]]:
        """The earliest pending event's emu time and action (INF: none); at equal times a
        finish first, then a link change, a start (deliveries are timers of their own)."""
        done = self.net.next_completion()
        t, act = INF if done is None else done[0], self._do_finish
        if self._link_changes and self._link_changes[0][0] < t:
            t, act = self._link_changes[0][0], self._do_link
        if self._starts and self._starts[0][0] < t:
            t, act = self._starts[0][0], self._do_start
        return t, act

    async def run(self) -> None:
        # the fabric's events run on one loop timer, re-aimed as they come (_aim), not in a
        # task that waits for each (~29k a run: a future, a task step and a coroutine resume
        # each); its task only waits to end the run with an error one of them raised
        self._failure = asyncio.get_running_loop().create_future()
        self._aim()
        await self._failure

    def _aim(self) -> None:
        """Set the loop timer for the earliest pending event's release time (the gate's), if
        it is not set for that time already; none when nothing is pending."""
        t, _ = self._next_event()
        at = self.gate.release_s(t) if t != INF else INF
        timer = self._timer
        if timer is not None:
            if self._aim_s == at:
                return
            timer.cancel()
            self._timer = None
        if at == INF or self._failure is None:  # (none before the fabric's task starts)
            return
        delay = self.clock.loop_delay_s(at)
        loop = self.clock.event_loop()
        self._timer = loop.call_later(delay, self._on_time) if delay > 0 else \
            loop.call_soon(self._on_time)
        self._aim_s = at

    def _on_time(self) -> None:
        """Act on every pending event whose release time has come, in modeled-time order,
        then aim at the next; an error ends the fabric's task with it."""
        self._timer = None
        next_event, gate, clock = self._next_event, self.gate, self.clock
        try:
            while True:
                t, act = next_event()
                if t == INF or clock.loop_delay_s(gate.release_s(t)) > 0:
                    break
                act(t)
            self._aim()
        except Exception as e:  # noqa: BLE001 - raised by the fabric's task (run)
            if self._failure is not None and not self._failure.done():
                self._failure.set_exception(e)

    def _do_start(self, t: float) -> None:
        _, seq = heapq.heappop(self._starts)
        tr = self._transfers[seq]
        start = max(t, self.net.now_s)
        if tr.start_s is None:
            tr.start_s = start
            self.decide_at(start)
            msg = tr.msg
            payload = msg.payload  # its real copy overlaps the modeled transfer; a marker
            if payload is not None and type(payload) is not KvMarker:  # is at hand already
                self.peers[msg.dst_unit].send(KvPrefetch(msg.request.request_id, payload, start))
        self.net.add(seq, tr.route.path, tr.chunk_bytes, start)
        self.links.record(start, self.net.link_loads())
        late = start - t
        if self.gate.may_backdate(late, len(tr.ready_s) == 1 and tr.sent_chunks == 0):
            self._backdate(seq, tr, t, late)

    def _backdate(self, seq: int, tr: Transfer, t: float, late: float) -> None:
        """The request reached the fabric after the fabric had moved past its modeled start
        (lag on the ray engine): start it at its modeled time anyway, crediting the bytes it
        would have sent since at its current fair rate."""
        tr.start_s = t
        early = self.net.backdate(seq, late)
        if early > 0:  # it would already have finished: deliver at the modeled end
            self.net.finish(seq, self.net.now_s)
            tr.sent_chunks += 1
            self._deliver_later(seq, self.net.now_s - early)
            self.links.record(self.net.now_s, self.net.link_loads())

    def _do_finish(self, t: float) -> None:
        done = self.net.next_completion()
        assert done is not None
        t_end, seq = done
        self.net.finish(seq, t_end)
        self.act_at(t_end)
        tr = self._transfers[seq]
        tr.sent_chunks += 1
        if tr.sent_chunks < len(tr.ready_s):
            heapq.heappush(self._starts, (max(t_end, tr.ready_s[tr.sent_chunks]), seq))
        else:
            self._deliver_later(seq, t_end)
        self.links.record(t_end, self.net.link_loads())

    def _deliver_later(self, seq: int, t_end: float) -> None:
        tr = self._transfers.pop(seq)
        msg, start, route = tr.msg, tr.start_s, tr.route
        assert start is not None
        deliver_s = t_end + route.latency_s
        self.bytes_moved += msg.kv_bytes
        for link in route.path:
            self.link_bytes[link] = self.link_bytes.get(link, 0.0) + msg.kv_bytes
        record = TransferRecord(
            msg.request.request_id, msg.request.attempt, msg.src_unit, msg.dst_unit,
            route.src_host, route.dst_host, msg.kv_bytes, start, deliver_s)
        delivered = KvDelivered(msg.request, msg.src_unit, msg.kv_bytes, msg.payload, start,
                                deliver_s, reused_blocks=msg.reused_blocks,
                                records=(*msg.records, record))
        # a delivery changes nothing on the network: a timer of its own hands it over at the
        # gate's release time for its modeled arrival, without a turn of the fabric's loop
        delay = self.clock.loop_delay_s(self.gate.release_s(deliver_s))
        loop = self.clock.event_loop()
        if delay > 0:
            loop.call_later(delay, self._do_deliver, msg.dst_unit, delivered)
        else:
            loop.call_soon(self._do_deliver, msg.dst_unit, delivered)

    def _do_deliver(self, dst: str, msg: KvDelivered) -> None:
        self.act_at(msg.sent_s)
        self.peers[dst].send(msg)

    def results(self) -> dict[str, Any]:
        out = super().results()
        out.update(link_log=self.links.log or [],
                   link_state=self.links.state(),
                   capacity=dict(self.links.capacity))
        return out

    def drain_series(self) -> list[dict[str, Any]]:
        """Final bins of every link's history (bytes carried, active flows): the fabric acts in
        modeled-time order, so nothing changes before its network's clock any more."""
        return self.links.drain(min(self.clock.now(), self.net.now_s) - SERIES_MARGIN_S)

    def snapshot(self) -> dict[str, Any]:
        """Active transfers, bytes delivered so far, and per link (``host/egress``...) the bytes
        of the transfers it finished carrying and its capacity, bytes/s."""
        links = {f"{k[0]}/{k[1]}": (self.link_bytes.get(k, 0.0), cap)
                 for k, cap in self.topology.capacity.items()}
        return {"name": self.name, "active": len(self.net), "bytes_moved": self.bytes_moved,
                "links": links}

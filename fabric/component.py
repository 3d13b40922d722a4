"""The fabric component: KV transfers as flows on the EFA model, delivered at modeled times.

A transfer starts at its request's modeled time plus the per-transfer setup cost, shares link
bandwidth max-min fairly with the flows in progress (rates recomputed as flows come and go), and is
delivered to the decode unit one link latency after its last byte leaves — never earlier in emu
time than that. Events are processed in modeled-time order whatever the wall-clock wake-up.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from disagg.cluster.component import Clock, Component
from disagg.cluster.config import FabricConfig
from disagg.cluster.messages import KvDelivered, KvPrefetch, TransferRequested
from disagg.fabric.flows import FluidNetwork
from disagg.fabric.topology import Topology

INF = float("inf")


class Fabric(Component):
    """Moves KV payload references between units at the modeled speed of the network."""

    def __init__(
        self, name: str, clock: Clock, topology: Topology, config: FabricConfig,
        control_delay_s: float = 0.0,
    ) -> None:
        super().__init__(name, clock)
        self.topology = topology
        self.config = config
        self.control_delay_s = control_delay_s
        cap = INF if config.per_flow_cap_gbps is None else config.per_flow_cap_gbps * 1e9 / 8
        self.net = FluidNetwork(topology.capacity, cap)
        self._starts: list[tuple[float, int, TransferRequested]] = []
        self._deliveries: list[tuple[float, int, str, KvDelivered]] = []
        self._last_rates: dict[Any, tuple[float, int]] = {}
        self._active: dict[int, tuple[TransferRequested, float]] = {}
        self._seq = 0
        self.wake = asyncio.Event()
        self.transfers: list[dict[str, Any]] = []
        self.link_log: list[tuple[float, str, float, int]] = []  # (t, link, bytes/s, flows)
        self.bytes_moved = 0.0
        self.link_bytes: dict[Any, float] = {}  # modeled bytes of finished transfers per link
        self.handlers = {TransferRequested: self._on_transfer}

    def _on_transfer(self, msg: TransferRequested) -> None:
        start = msg.sent_s + self.control_delay_s + self.config.setup_s
        self._seq += 1
        heapq.heappush(self._starts, (start, self._seq, msg))
        self.wake.set()

    def _next_event(self) -> tuple[float, str]:
        candidates = [(INF, "idle")]
        if self._starts:
            candidates.append((self._starts[0][0], "start"))
        done = self.net.next_completion()
        if done is not None:
            candidates.append((done[0], "finish"))
        if self._deliveries:
            candidates.append((self._deliveries[0][0], "deliver"))
        return min(candidates)

    async def run(self) -> None:
        while True:
            t, kind = self._next_event()
            self.wake.clear()
            if t == INF:
                await self.wake.wait()
                continue
            if await self.clock.wait_until(t, self.wake):
                continue
            getattr(self, f"_do_{kind}")(t)

    def _do_start(self, t: float) -> None:
        _, seq, msg = heapq.heappop(self._starts)
        start = max(t, self.net.now_s)
        self.decide_at(start)
        self._active[seq] = (msg, start)
        if msg.payload is not None:
            self.peers[msg.dst_unit].send(KvPrefetch(msg.request.request_id, msg.payload, start))
        self.net.add(seq, self.topology.path(msg.src_unit, msg.dst_unit), msg.kv_bytes, start)
        self._log_links(start)

    def _do_finish(self, t: float) -> None:
        done = self.net.next_completion()
        assert done is not None
        t_end, seq = done
        self.net.finish(seq, t_end)
        self.act_at(t_end)
        msg, start = self._active.pop(seq)
        deliver_s = t_end + self.config.latency_s
        self.bytes_moved += msg.kv_bytes
        for link in self.topology.path(msg.src_unit, msg.dst_unit):
            self.link_bytes[link] = self.link_bytes.get(link, 0.0) + msg.kv_bytes
        self.transfers.append({
            "request_id": msg.request.request_id, "src_unit": msg.src_unit,
            "dst_unit": msg.dst_unit, "src_host": self.topology.unit_host[msg.src_unit],
            "dst_host": self.topology.unit_host[msg.dst_unit], "modeled_bytes": msg.kv_bytes,
            "start_s": start, "modeled_end_s": deliver_s,
        })
        delivered = KvDelivered(msg.request, msg.src_unit, msg.kv_bytes, msg.payload, start,
                                sent_s=deliver_s)
        heapq.heappush(self._deliveries, (deliver_s, seq, msg.dst_unit, delivered))
        self._log_links(t_end)

    def _do_deliver(self, t: float) -> None:
        _, _, dst, msg = heapq.heappop(self._deliveries)
        self.act_at(msg.sent_s)
        self.peers[dst].send(msg)

    def _log_links(self, t: float) -> None:
        rates = self.net.link_rates()
        counts: dict[Any, int] = {}
        for _, (msg, _) in self._active.items():
            for link in self.topology.path(msg.src_unit, msg.dst_unit):
                counts[link] = counts.get(link, 0) + 1
        for link, rate in rates.items():
            now = (rate, counts.get(link, 0))
            if self._last_rates.get(link, (0.0, 0)) != now:
                self._last_rates[link] = now
                self.link_log.append((t, f"{link[0]}/{link[1]}", *now))

    def results(self) -> dict[str, Any]:
        out = super().results()
        out.update(transfers=self.transfers, link_log=self.link_log,
                   capacity={f"{k[0]}/{k[1]}": v for k, v in self.topology.capacity.items()})
        return out

    def snapshot(self) -> dict[str, Any]:
        """Active transfers, bytes delivered so far, and per link (``host/egress``...) the bytes
        of the transfers it finished carrying and its capacity, bytes/s."""
        links = {f"{k[0]}/{k[1]}": (self.link_bytes.get(k, 0.0), cap)
                 for k, cap in self.topology.capacity.items()}
        return {"name": self.name, "active": len(self.net), "bytes_moved": self.bytes_moved,
                "links": links}

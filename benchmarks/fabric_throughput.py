"""How many KV transfers per second of wall time the fabric sustains, on each engine.

virtual: the Fabric component alone on the virtual-time loop — pure event rate. 1 GB transfers
  arrive (Poisson, fixed seed) from 8 prefill hosts to 4 decode hosts (uniformly), at a given load
  (offered bytes/s over the 4 decode NICs' capacity); the higher the load, the more flows share
  each link at once, so the cost of max-min rebalancing with many concurrent flows is included.
ray: one Fabric actor (wall clock, dilation 1) fed by one sender actor that first puts small real
  Arrow KV payloads in the object store, then sends their references as fast as it can; a sink
  actor fetches and verifies every delivered payload (as a decode unit does). The rate counts
  first send to last verified delivery.

    python benchmarks/fabric_throughput.py [--engine virtual|ray|both] [--transfers N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.config import FabricConfig
from disagg.cluster.messages import KvDelivered, KvPrefetch, Request, TransferRequested
from disagg.cluster.records import TransferRecord
from disagg.fabric.component import Fabric
from disagg.fabric.payload import make_payload, verify_payload
from disagg.fabric.topology import Topology

NIC_BYTES_PER_S = 3_200e9 / 8  # trn2.48xlarge EFA (Neuron docs trn2-arch)
SRC_HOSTS, DST_HOSTS = 8, 4


def topology() -> Topology:
    """8 prefill and 4 decode hosts, one unit each, 3,200 Gbps NICs, no core."""
    hosts = {f"p{i}": f"P{i}" for i in range(SRC_HOSTS)}
    hosts |= {f"d{j}": f"D{j}" for j in range(DST_HOSTS)}
    cap = {(h, d): NIC_BYTES_PER_S for h in hosts.values() for d in ("egress", "ingress")}
    return Topology(hosts, cap, has_core=False)


def _request(i: int) -> Request:
    return Request(i, 0.0, 1000, 100)


class _Count:
    """A decode-unit stand-in that counts deliveries (keeping the fabric's transfer records)
    and sets ``done`` after ``want``."""

    def __init__(self, want: int, done: asyncio.Event) -> None:
        self.want, self.done, self.seen = want, done, 0
        self.transfers: list[TransferRecord] = []

    def send(self, msg: KvDelivered) -> None:
        self.transfers.extend(r for r in msg.records if isinstance(r, TransferRecord))
        self.seen += 1
        if self.seen == self.want:
            self.done.set()


def virtual_rate(
    transfers: int, load: float, size_bytes: float = 1e9, seed: int = 0
) -> dict[str, float]:
    """Wall-clock transfers/s of the Fabric alone on virtual time at ``load`` (0..1) of the
    decode-side NIC capacity; also the measured mean number of flows in flight."""
    rng = np.random.default_rng(seed)
    alone_s = size_bytes / NIC_BYTES_PER_S
    arrivals = np.cumsum(rng.exponential(alone_s / (load * DST_HOSTS), transfers))
    loop = VirtualTimeLoop()
    fabric = Fabric("fabric", VirtualClock(loop), topology(), FabricConfig())

    done = asyncio.Event()
    sink = _Count(transfers, done)

    async def main() -> float:
        fabric.connect({f"d{j}": sink for j in range(DST_HOSTS)})  # type: ignore[dict-item]
        task = loop.create_task(fabric.run())
        for i, t in enumerate(arrivals):
            src, dst = f"p{i % SRC_HOSTS}", f"d{int(rng.integers(DST_HOSTS))}"
            msg = TransferRequested(_request(i), src, dst, size_bytes, None, float(t))
            loop.call_at(float(t), fabric.deliver, msg)
        started = time.perf_counter()
        await done.wait()
        task.cancel()
        return time.perf_counter() - started

    try:
        wall = loop.run_until_complete(main())
    finally:
        loop.close()
    busy = sum(r.transfer_end_s - r.transfer_start_s for r in sink.transfers)
    span = max(r.transfer_end_s for r in sink.transfers) - arrivals[0]
    return {"transfers": transfers, "wall_s": wall, "transfers_per_s": transfers / wall,
            "mean_flows_in_flight": busy / span}


async def _fetch(ref: Any) -> Any:
    """A payload from the object store (a reference nested in a message, as in the engine)."""
    return await ref


class _Sink:
    """Ray actor body: a decode-unit stand-in that fetches every payload (starting at the
    fabric's KvPrefetch, as the decode unit does) and verifies it on KvDelivered."""

    def __init__(self, want: int) -> None:
        self.want, self.seen, self.done, self.last_s = want, 0, asyncio.Event(), 0.0
        self.fetches: dict[int, Any] = {}

    async def deliver(self, msg: KvDelivered | KvPrefetch) -> None:
        if isinstance(msg, KvPrefetch):
            self.fetches[msg.request_id] = asyncio.ensure_future(_fetch(msg.payload))
            return
        fetch = self.fetches.pop(msg.request.request_id, None)
        payload = await (fetch if fetch is not None else _fetch(msg.payload))
        verify_payload(payload, msg.request.request_id)
        self.seen += 1
        if self.seen == self.want:
            self.last_s = time.time()
            self.done.set()

    async def wait(self) -> float:
        await self.done.wait()
        return self.last_s

    async def seen_count(self) -> int:
        return self.seen


class _FabricHost:
    """Ray actor body: the Fabric component on the wall clock, delivering to the sink."""

    def __init__(self, sink: Any) -> None:
        from disagg.actors.engines.ray_engine import RayPeer, WallClock

        self.clock = WallClock()
        self.fabric = Fabric("fabric", self.clock, topology(), FabricConfig())
        self.fabric.connect({f"d{j}": RayPeer(sink) for j in range(DST_HOSTS)})
        self.task: Any = None

    async def start(self) -> float:
        self.task = asyncio.get_running_loop().create_task(self.fabric.run())
        return self.clock.t0

    async def deliver(self, msg: TransferRequested) -> None:
        self.fabric.deliver(msg)

    async def status(self) -> str:
        err = self.task.exception() if self.task is not None and self.task.done() else None
        return f"{self.fabric.bytes_moved / 1e9:.1f} GB delivered, error {err!r}"

    async def lag_p99_ms(self) -> float:
        lags_s, _ = self.fabric.lags.values()  # exact up to 65,536 lags
        return float(np.percentile(lags_s, 99)) * 1e3 if len(lags_s) else 0.0


class _Sender:
    """Ray actor body: puts payloads in the object store, then sends transfers as fast as it can."""

    def __init__(self) -> None:
        self.refs: list[Any] = []

    async def prepare(self, n: int, scale_bytes: int) -> float:
        """Make and put ``n`` payloads in the object store; seconds it took."""
        import ray

        started = time.time()
        for i in range(n):
            self.refs.append(ray.put(make_payload(i, 1000, "bench", 2, 8, scale_bytes, 1.0)))
        return time.time() - started

    async def send(self, fabric: Any, t0: float, scale_bytes: int) -> tuple[float, float]:
        """Send one transfer per prepared payload; (first, last) wall s."""
        started = time.time()
        for i, ref in enumerate(self.refs):
            msg = TransferRequested(_request(i), f"p{i % SRC_HOSTS}", f"d{i % DST_HOSTS}",
                                    float(scale_bytes), ref, time.time() - t0)
            fabric.deliver.remote(msg)
        return started, time.time()


def ray_rate(transfers: int, payload_bytes: int = 4096) -> dict[str, float]:
    """Wall-clock transfers/s through a Fabric actor fed by one sender, verified by a sink.
    (Run as a script: the actor classes travel to the workers by value.)"""
    import ray

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(include_dashboard=False, logging_level="WARNING")
    actors: list[Any] = []
    try:
        sink = ray.remote(_Sink).options(num_cpus=0).remote(transfers)
        host = ray.remote(_FabricHost).options(num_cpus=0).remote(sink)
        sender = ray.remote(_Sender).options(num_cpus=0).remote()
        actors = [sink, host, sender]
        t0 = ray.get(host.start.remote())
        put_s = ray.get(sender.prepare.remote(transfers, payload_bytes))
        first, sent = ray.get(sender.send.remote(host, t0, payload_bytes))
        ready, _ = ray.wait([sink.wait.remote()], timeout=60 + transfers / 10)
        if not ready:
            raise RuntimeError(f"fabric stuck: {ray.get(host.status.remote())}, sink verified "
                               f"{ray.get(sink.seen_count.remote())} of {transfers}")
        last = ray.get(ready[0])
        lag = ray.get(host.lag_p99_ms.remote())
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_ray:
            ray.shutdown()
    wall = last - first
    return {"transfers": transfers, "wall_s": wall, "transfers_per_s": transfers / wall,
            "payload_bytes": payload_bytes, "fabric_lag_p99_ms": lag, "send_s": sent - first,
            "put_s": put_s}


def main() -> None:
    """Run the chosen engines and print one line per measurement (or, ``--markdown``, the
    table of docs/benchmarks.md: best run and range over ``--runs`` runs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["virtual", "ray", "both"], default="both")
    parser.add_argument("--transfers", type=int, default=20_000, help="virtual engine transfers")
    parser.add_argument("--ray-transfers", type=int, default=3_000)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument("--runs", type=int, default=1, help="runs per row (--markdown)")
    args = parser.parse_args()
    if args.markdown:
        markdown(args)
        return
    if args.engine in ("virtual", "both"):
        for load in (0.25, 0.8, 0.95):
            r = virtual_rate(args.transfers, load)
            print(f"virtual  load {load:.2f}, {r['mean_flows_in_flight']:.1f} flows in flight: "
                  f"{r['transfers']} transfers in {r['wall_s']:.2f} s wall = "
                  f"{r['transfers_per_s']:,.0f} transfers/s")
    if args.engine in ("ray", "both"):
        r = ray_rate(args.ray_transfers)
        print(f"ray      {r['transfers']} transfers of {r['payload_bytes']} B payloads in "
              f"{r['wall_s']:.2f} s wall = {r['transfers_per_s']:,.0f} transfers/s "
              f"(payloads made and put beforehand at {r['transfers'] / r['put_s']:,.0f}/s; "
              f"sends issued at {r['transfers'] / r['send_s']:,.0f}/s; fabric lag p99 "
              f"{r['fabric_lag_p99_ms']:.2f} ms)")


def markdown(args: argparse.Namespace) -> None:
    """One row per setting: the best of ``args.runs`` runs and their range, transfers/s."""
    rows: list[tuple[str, str, list[float]]] = []
    if args.engine in ("virtual", "both"):
        for load in (0.25, 0.8, 0.95):
            runs = [virtual_rate(args.transfers, load) for _ in range(args.runs)]
            flows = runs[0]["mean_flows_in_flight"]
            rows.append(("virtual", f"load {load:.2f} ({flows:.1f} flows in flight on average)",
                         [r["transfers_per_s"] for r in runs]))
    if args.engine in ("ray", "both"):
        runs = [ray_rate(args.ray_transfers) for _ in range(args.runs)]
        rows.append(("ray", f"one sender, {runs[0]['payload_bytes']:,} B payloads, prefetched "
                     "and verified at the sink", [r["transfers_per_s"] for r in runs]))
    print(f"{args.runs} run(s) per row; {args.transfers:,} virtual / {args.ray_transfers:,} ray "
          "transfers per run.\n")
    print("| engine | setting | transfers/s (wall), best | range over runs |")
    print("|---|---|---:|---|")
    for engine, setting, rates in rows:
        print(f"| {engine} | {setting} | {max(rates):,.0f} | "
              f"{min(rates):,.0f} – {max(rates):,.0f} |", flush=True)

if __name__ == "__main__":
    main()

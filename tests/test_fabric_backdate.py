"""A transfer request that reaches the fabric after the fabric has moved past its modeled start
(lag on the ray engine) still starts at its modeled time."""

from __future__ import annotations

import asyncio

import pytest
from conftest import make_request

from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.config import FabricConfig
from disagg.cluster.messages import TransferRequested
from disagg.cluster.records import TransferRecord
from disagg.fabric.component import Fabric
from disagg.fabric.flows import FluidNetwork
from disagg.fabric.topology import Topology

GB = 1e9
LAT = 35e-6


class _Sink:
    def __init__(self) -> None:
        self.got: dict[int, float] = {}
        self.transfers: dict[int, TransferRecord] = {}  # the fabric's record of each delivery

    def send(self, msg) -> None:
        self.got[msg.request.request_id] = msg.sent_s
        [rec] = [r for r in msg.records if isinstance(r, TransferRecord)]
        self.transfers[msg.request.request_id] = rec


def _run(sends: list[tuple[float, float, str, float]]) -> tuple[dict[int, float], Fabric]:
    """Each send: (arrives at the fabric, modeled sent_s, source unit, bytes) to unit "d"."""
    hosts = {"p0": "h0", "p1": "h1", "d": "hd"}
    cap = {(h, k): 10 * GB for h in ("h0", "h1", "hd") for k in ("egress", "ingress")}
    loop = VirtualTimeLoop()
    fabric = Fabric("fabric", VirtualClock(loop), Topology(hosts, cap, False),
                    FabricConfig(latency_s=LAT))
    sink = _Sink()
    fabric.connect({"d": sink})

    async def main() -> None:
        task = loop.create_task(fabric.run())
        for i, (arrive, sent, src, size) in enumerate(sends):
            msg = TransferRequested(make_request(request_id=i), src, "d", size, None, sent)
            loop.call_at(arrive, fabric.deliver, msg)
        await asyncio.sleep(10.0)
        task.cancel()

    loop.run_until_complete(main())
    loop.close()
    fabric.delivered = sink.transfers  # type: ignore[attr-defined]
    return sink.got, fabric


def test_a_late_request_starts_at_its_modeled_time() -> None:
    # transfer 0 keeps the fabric busy until 0.3 s; transfer 1 (modeled at 0.2 s) arrives at 0.5 s
    got, fabric = _run([(0.0, 0.0, "p0", 3 * GB), (0.5, 0.2, "p1", 2 * GB)])
    assert got[0] == pytest.approx(0.3 + LAT)
    assert got[1] == pytest.approx(0.2 + 2 / 10 + LAT)  # it would have finished at 0.4 s
    assert fabric.gate.backdated == 1
    assert fabric.delivered[1].transfer_start_s == pytest.approx(0.2)


def test_a_late_request_still_in_flight_is_credited_its_bytes() -> None:
    # modeled at 0.25 s, arrives at 0.35 s (the fabric moved to 0.3 s); 3 GB at 10 GB/s
    got, fabric = _run([(0.0, 0.0, "p0", 3 * GB), (0.35, 0.25, "p1", 3 * GB)])
    assert got[1] == pytest.approx(0.25 + 0.3 + LAT, rel=1e-9)
    assert fabric.gate.backdated == 1


def test_backdate_credits_bytes_at_the_current_rate() -> None:
    net = FluidNetwork({"l": 10.0})
    net.add(1, ("l",), 100.0, 5.0)
    assert net.backdate(1, 4.0) == 0.0
    assert net.next_completion() == (pytest.approx(11.0), 1)
    net2 = FluidNetwork({"l": 10.0})
    net2.add(1, ("l",), 30.0, 5.0)
    assert net2.backdate(1, 4.0) == pytest.approx(1.0)  # would have finished 1 s ago


def test_a_late_request_that_would_be_done_is_delivered_at_its_modeled_end() -> None:
    got, fabric = _run([(0.0, 0.0, "p0", 3 * GB), (0.5, 0.2, "p1", 0.5 * GB)])
    assert got[1] == pytest.approx(0.2 + 0.05 + LAT)
    assert fabric.delivered[1].transfer_end_s == pytest.approx(0.25 + LAT)

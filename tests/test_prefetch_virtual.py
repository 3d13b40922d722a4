"""The virtual engine sends no ``KvPrefetch``: its payload (a ``KvMarker`` in the in-process
store) is at hand already, so a transfer's ``real_end_s`` is its delivery, ``modeled_end_s``.
A payload that is not at hand (Ray's store) is still prefetched from the transfer's start."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from conftest import make_experiment, make_request

from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop, run_virtual
from disagg.cluster.config import FabricConfig
from disagg.cluster.messages import KvDelivered, KvPrefetch, TransferRequested
from disagg.experiments.run import assemble
from disagg.fabric.component import Fabric
from disagg.fabric.payload import KvMarker
from disagg.fabric.topology import Topology


def test_a_marker_is_not_prefetched_and_arrives_with_its_delivery() -> None:
    exp = make_experiment(experiment__duration_s=5.0)
    counts: Counter[str] = Counter()

    def on_start(comps: dict[str, Any]) -> None:
        for comp in comps.values():
            def counting(message: Any, deliver: Any = comp.deliver) -> None:
                counts[type(message).__name__] += 1
                deliver(message)
            comp.deliver = counting

    raw = run_virtual(exp, on_start=on_start)
    transfers = assemble(exp, raw).tables["transfers"].to_pylist()
    assert counts["KvDelivered"] > 5 and counts["KvPrefetch"] == 0
    assert len(transfers) == counts["KvDelivered"]
    for t in transfers:
        assert t["real_end_s"] == pytest.approx(t["modeled_end_s"], abs=1e-9)
        assert t["real_end_s"] > t["start_s"]


class _Unit:
    def __init__(self) -> None:
        self.got: list[Any] = []

    def send(self, msg: Any) -> None:
        self.got.append(msg)


@pytest.mark.parametrize(("payload", "prefetched"), [("a store reference", True),
                                                     (KvMarker(1, 1000), False)])
def test_only_a_payload_not_at_hand_is_prefetched(payload: Any, prefetched: bool) -> None:
    loop = VirtualTimeLoop()
    topology = Topology({"prefill-0": "h0", "decode-0": "h1"},
                        {(h, side): 1e9 for h in ("h0", "h1") for side in ("egress", "ingress")},
                        has_core=False)
    fabric = Fabric("fabric", VirtualClock(loop), topology, FabricConfig(latency_s=1e-5))
    unit = _Unit()
    fabric.connect({"decode-0": unit})
    fabric.deliver(TransferRequested(make_request(request_id=1), "prefill-0", "decode-0", 1e6,
                                     payload, 0.0))
    task = loop.create_task(fabric.run())
    loop.run_until_complete(asyncio.sleep(0.01))  # virtual time: the transfer ends by then
    task.cancel()
    assert isinstance(unit.got[-1], KvDelivered)
    assert any(isinstance(m, KvPrefetch) for m in unit.got) is prefetched
    loop.close()

"""The Fabric component on virtual time: hand-computed delivery times end to end (messages in,
KvDelivered out), layer-wise streaming, and the topology's defaults."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import make_experiment, make_request

from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.config import FabricConfig
from disagg.cluster.errors import ConfigError
from disagg.cluster.messages import KvDelivered, TransferRequested
from disagg.cluster.records import TransferRecord
from disagg.fabric.component import Fabric, chunk_ready_times
from disagg.experiments.results.fabric_invariants import check_transfers
from disagg.fabric.topology import Topology, build_topology

GB = 1e9
LAT = 35e-6


class _Inbox:
    """A decode-unit stand-in that records when each KvDelivered arrives (emu s)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: dict[int, float], want: int,
                 done: asyncio.Event) -> None:
        self.loop, self.log, self.want, self.done = loop, log, want, done
        self.transfers: list[TransferRecord] = []  # the fabric's records of its deliveries

    def send(self, msg: KvDelivered) -> None:
        assert msg.sent_s == pytest.approx(self.loop.time(), abs=1e-12)
        self.log[msg.request.request_id] = msg.sent_s
        self.transfers.extend(r for r in msg.records if isinstance(r, TransferRecord))
        if len(self.log) == self.want:
            self.done.set()


def _topology(hosts: dict[str, str], nic_bytes_per_s: dict[str, float]) -> Topology:
    cap = {}
    for host, bw in nic_bytes_per_s.items():
        cap[(host, "egress")] = bw
        cap[(host, "ingress")] = bw
    return Topology(hosts, cap, has_core=False)


def run_fabric(
    topology: Topology, sends: list[tuple[float, str, str, float]],
    config: FabricConfig | None = None, windows: dict[int, tuple[float, float]] | None = None,
    layers: int = 1,
) -> tuple[dict[int, float], Fabric]:
    """Send transfer i = (sent_s, src, dst, bytes) to a Fabric on virtual time; delivery times."""
    loop = VirtualTimeLoop()
    config = config or FabricConfig(latency_s=LAT)
    fabric = Fabric("fabric", VirtualClock(loop), topology, config, layers=layers)
    log: dict[int, float] = {}

    async def main() -> None:
        done = asyncio.Event()
        dsts = {dst for _, _, dst, _ in sends}
        inboxes = {d: _Inbox(loop, log, len(sends), done) for d in dsts}
        fabric.connect(inboxes)  # type: ignore[arg-type]
        task = loop.create_task(fabric.run())
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or done.set())
        for i, (t, src, dst, size) in enumerate(sends):
            window = (windows or {}).get(i)
            msg = TransferRequested(make_request(request_id=i), src, dst, size, None, t, window)
            loop.call_at(t, fabric.deliver, msg)
        await done.wait()
        fabric.delivered = [t for i in inboxes.values() for t in i.transfers]  # type: ignore[attr-defined]
        if task.done():
            raise task.exception()  # type: ignore[misc]
        task.cancel()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return log, fabric


def test_one_flow_alone_takes_latency_plus_bytes_over_bandwidth() -> None:
    topo = _topology({"p": "A", "d": "B"}, {"A": 400 * GB, "B": 195 * GB})
    log, fabric = run_fabric(topo, [(1.0, "p", "d", 3.2768 * GB)])
    expected = 1.0 + LAT + 3.2768 / 195
    assert log[0] == pytest.approx(expected, rel=5e-3)  # the bar
    assert log[0] == pytest.approx(expected, rel=1e-12)  # and in fact exact
    [row] = fabric.delivered
    assert row.transfer_start_s == 1.0 and row.transfer_end_s == log[0]


def test_n_equal_flows_leaving_one_host_finish_at_latency_plus_n_bytes_over_bandwidth() -> None:
    n, size, bw = 4, 2 * GB, 50 * GB
    hosts = {"p": "A", **{f"d{k}": f"B{k}" for k in range(n)}}
    nics = {"A": bw, **{f"B{k}": 400 * GB for k in range(n)}}
    log, _ = run_fabric(_topology(hosts, nics), [(0.5, "p", f"d{k}", size) for k in range(n)])
    assert all(t == pytest.approx(0.5 + LAT + n * size / bw, rel=1e-12) for t in log.values())


def test_flows_between_disjoint_host_pairs_do_not_slow_each_other() -> None:
    hosts = {"p0": "A", "d0": "B", "p1": "C", "d1": "D"}
    topo = _topology(hosts, {h: 25 * GB for h in "ABCD"})
    both, _ = run_fabric(topo, [(0.0, "p0", "d0", 5 * GB), (0.0, "p1", "d1", 5 * GB)])
    alone, _ = run_fabric(topo, [(0.0, "p0", "d0", 5 * GB)])
    assert both[0] == pytest.approx(alone[0], rel=1e-12) == pytest.approx(LAT + 0.2)
    assert both[1] == pytest.approx(LAT + 0.2, rel=1e-12)


def test_a_flow_joining_halfway_finishes_when_max_min_says() -> None:
    # Two prefill hosts send into one decode host (ingress 10 GB/s). A: 10 GB from t=0; B: 10 GB
    # from t=0.5, when A has 5 GB left. Both then get 5 GB/s: A's last byte at 1.5 s; B then has
    # 5 GB left alone at 10 GB/s: last byte at 2.0 s. Each is delivered one latency later.
    hosts = {"p0": "A", "p1": "C", "d": "B"}
    topo = _topology(hosts, {"A": 40 * GB, "C": 40 * GB, "B": 10 * GB})
    log, _ = run_fabric(topo, [(0.0, "p0", "d", 10 * GB), (0.5, "p1", "d", 10 * GB)])
    assert log == {0: pytest.approx(1.5 + LAT, rel=1e-12), 1: pytest.approx(2.0 + LAT, rel=1e-12)}


def test_per_flow_cap_and_setup_cost() -> None:
    topo = _topology({"p": "A", "d": "B"}, {"A": 400 * GB, "B": 400 * GB})
    cfg = FabricConfig(latency_s=LAT, setup_s=0.002, per_flow_cap_gbps=8 * 69.5)  # 69.5 GB/s
    log, fabric = run_fabric(topo, [(0.0, "p", "d", 6.95 * GB)], cfg)
    assert log[0] == pytest.approx(0.002 + 0.1 + LAT, rel=1e-12)
    assert fabric.delivered[0].transfer_start_s == pytest.approx(0.002)


def test_same_host_transfer_skips_the_nic() -> None:
    topo = _topology({"p": "A", "d": "A"}, {"A": 1 * GB})
    log, fabric = run_fabric(topo, [(0.0, "p", "d", 100 * GB)])
    assert log[0] == pytest.approx(LAT)
    assert fabric.link_bytes == {}  # no NIC link carried any byte


def test_chunk_ready_times_spread_over_the_prefill() -> None:
    assert chunk_ready_times(1.0, None, 80) == [1.0]
    assert chunk_ready_times(1.0, (1.0, 2.0), 4) == [1.25, 1.5, 1.75, 2.0]
    assert chunk_ready_times(1.6, (1.0, 2.0), 4) == [1.6, 1.6, 1.75, 2.0]  # placed late


def test_layer_wise_fast_network_ends_one_chunk_after_the_prefill() -> None:
    # 80 layers of 0.1 GB over 100 GB/s (1 ms each) while a 1 s prefill releases one per 12.5 ms:
    # each chunk leaves as soon as it is ready; the last leaves at the prefill end (2.0 s).
    topo = _topology({"p": "A", "d": "B"}, {"A": 100 * GB, "B": 100 * GB})
    cfg = FabricConfig(latency_s=LAT, layer_wise=True)
    log, fabric = run_fabric(topo, [(1.0, "p", "d", 8 * GB)], cfg, {0: (1.0, 2.0)}, layers=80)
    assert log[0] == pytest.approx(2.0 + 0.001 + LAT, rel=1e-12)
    assert fabric.delivered[0].transfer_start_s == pytest.approx(1.0125)
    after, _ = run_fabric(topo, [(2.0, "p", "d", 8 * GB)], FabricConfig(latency_s=LAT))
    assert after[0] == pytest.approx(2.0 + 0.08 + LAT, rel=1e-12)  # what streaming saves: 79 ms


def test_layer_wise_slow_network_is_bandwidth_bound_from_the_first_layer() -> None:
    # 4 chunks of 1 GB over 1 GB/s while a 1 s prefill releases one every 0.25 s: the link never
    # waits after the first chunk, so the last byte leaves at 0.25 + 4 s.
    topo = _topology({"p": "A", "d": "B"}, {"A": 1 * GB, "B": 1 * GB})
    cfg = FabricConfig(latency_s=LAT, layer_wise=True, layer_chunks=4)
    log, _ = run_fabric(topo, [(0.0, "p", "d", 4 * GB)], cfg, {0: (0.0, 1.0)}, layers=80)
    assert log[0] == pytest.approx(4.25 + LAT, rel=1e-12)


def test_layer_wise_off_ignores_the_window() -> None:
    topo = _topology({"p": "A", "d": "B"}, {"A": 1 * GB, "B": 1 * GB})
    log, _ = run_fabric(topo, [(0.0, "p", "d", 1 * GB)], FabricConfig(latency_s=LAT),
                        {0: (0.0, 5.0)}, layers=80)
    assert log[0] == pytest.approx(1.0 + LAT, rel=1e-12)


def _nics(exp: Any) -> dict[str, float]:
    topo = build_topology(exp)
    return {f"{h}/{d}": c for (h, d), c in topo.capacity.items()}


def test_topology_defaults_come_from_the_catalog() -> None:
    # trn2.48xlarge: 16 chips and 3,200 Gbps EFA per host (Neuron docs trn2-arch); CS-3: 1.56 Tb/s
    # per system (derived from CS-2's 1.2 Tb/s + 30%), a 4-system pipeline brings 4 NICs.
    exp = make_experiment(prefill__units=5)  # TP4 -> 4 units per trn2 host -> 2 hosts
    topo = build_topology(exp)
    assert topo.unit_host == {"prefill-0": "prefill-host-0", "prefill-1": "prefill-host-0",
                              "prefill-2": "prefill-host-0", "prefill-3": "prefill-host-0",
                              "prefill-4": "prefill-host-1", "decode-0": "decode-host-0"}
    nics = _nics(exp)
    assert nics["prefill-host-0/egress"] == 3200e9 / 8 == nics["prefill-host-1/ingress"]
    assert nics["decode-host-0/ingress"] == pytest.approx(4 * 1.56e12 / 8)
    assert topo.path("prefill-0", "prefill-1") == ()
    assert topo.path("prefill-0", "decode-0") == (("prefill-host-0", "egress"),
                                                  ("decode-host-0", "ingress"))


def test_host_nic_override_units_per_host_and_core() -> None:
    exp = make_experiment(decode__host_nic_gbps=100.0, prefill__units_per_host=1,
                          fabric={"core_oversubscription": 4.0})
    nics = _nics(exp)
    assert nics["decode-host-0/ingress"] == 100e9 / 8
    assert "prefill-host-1/egress" in nics
    assert nics["core/core"] == pytest.approx((2 * 400e9 + 12.5e9) / 4)
    assert build_topology(exp).path("prefill-1", "decode-0")[1] == ("core", "core")


def test_same_host_transfer_moves_at_nvlink_speed() -> None:
    # [placement] same_host on 8 x A100-80GB: 2 prefill + 1 decode single-GPU units share one host.
    # A copy crosses the source GPU's and the destination GPU's one-way NVLink: 600 GB/s total
    # NVLink per A100 / 2 = 300 GB/s (catalog a100-80gb), and arrives 5 us (the catalog's
    # intra_host_latency_s) after its last byte, not the EFA latency.
    exp = make_experiment(model="opt-13b", prefill__hardware="a100-80gb",
                          prefill__chips_per_unit=1, decode__hardware="a100-80gb",
                          decode__chips_per_unit=1, placement={"same_host": True})
    topo = build_topology(exp)
    assert set(topo.unit_host.values()) == {"prefill-host-0"}
    size = 600e6  # bytes
    log, _ = run_fabric(topo, [(1.0, "prefill-1", "decode-0", size)])
    assert log[0] == pytest.approx(1.0 + size / 300e9 + 5e-6, rel=1e-9)  # 1.002005 s
    # two copies into one decode GPU share its ingress: each at 150 GB/s
    log, _ = run_fabric(topo, [(1.0, "prefill-0", "decode-0", size),
                               (1.0, "prefill-1", "decode-0", size)])
    assert log[1] == pytest.approx(1.0 + 2 * size / 300e9 + 5e-6, rel=1e-9)


def test_same_host_packs_by_chips_and_crosses_hosts_over_efa() -> None:
    # TP4 units on 8-GPU hosts: prefill-0, prefill-1 on host 0; decode-0 on host 1 (EFA path)
    exp = make_experiment(model="opt-13b", prefill__hardware="a100-80gb",
                          prefill__chips_per_unit=4, decode__hardware="a100-80gb",
                          decode__chips_per_unit=4, placement={"same_host": True})
    topo = build_topology(exp)
    assert topo.unit_host == {"prefill-0": "prefill-host-0", "prefill-1": "prefill-host-0",
                              "decode-0": "prefill-host-1"}
    assert topo.path("prefill-0", "decode-0") == (("prefill-host-0", "egress"),
                                                  ("prefill-host-1", "ingress"))
    assert topo.latency_s("prefill-0", "decode-0", LAT) == LAT
    assert topo.capacity[("prefill-0", "intra-out")] == 4 * 300e9


def test_same_host_refuses_mixed_hardware() -> None:
    with pytest.raises(ConfigError, match="placement.same_host"):
        make_experiment(prefill__hardware="a100-80gb", decode__hardware="h100",
                        placement={"same_host": True})


def test_transfer_invariants_flag_a_copy_faster_than_nvlink() -> None:
    exp = make_experiment(model="opt-13b", prefill__hardware="a100-80gb",
                          prefill__chips_per_unit=1, decode__hardware="a100-80gb",
                          decode__chips_per_unit=1, placement={"same_host": True})
    # 600 MB over one-way NVLink 300 GB/s + 5 us: 2.005 ms at least
    row = {"request_id": 0, "src_unit": "prefill-0", "dst_unit": "decode-0",
           "src_host": "prefill-host-0", "dst_host": "prefill-host-0", "modeled_bytes": 600e6,
           "start_s": 1.0, "modeled_end_s": 1.002005}
    assert check_transfers(exp, [row]) == []
    fast = {**row, "modeled_end_s": 1.0019}
    moved = {**row, "dst_host": "decode-host-0"}
    assert [b[0] for b in check_transfers(exp, [fast, moved])] == ["transfer_speed", "placement"]

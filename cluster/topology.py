"""Where units live: hosts per pool, each with an EFA NIC (egress and ingress links), and an
optional network core with an oversubscription ratio. Transfers inside one host skip the NIC.

Defaults come from the catalog (each with its source): a trn2.48xlarge holds 16 Trainium2 chips
behind 3,200 Gbps of EFA (Neuron docs trn2-arch), so TP4 units pack 4 per host; a CS-3 system has
~1.56 Tb/s of I/O (derived from CS-2's 1.2 Tb/s + 30%), and a unit pipelining k systems is one
host with k of those NICs. ``PoolConfig.host_nic_gbps`` replaces the NIC of a whole host (for a
k-system CS-3 unit: of the unit, not per system). docs/fabric.md describes the model.

With ``[placement] same_host`` prefill and decode units share hosts (named ``prefill-host-N``),
packed by chips in order; a KV transfer between two units of one host crosses the source unit's
intra-host egress and the destination's ingress (``UNIT/intra-out``, ``UNIT/intra-in``: chips x
the chip's one-way intra-host bandwidth, NVLink-class) and arrives the host's intra-host latency
after its last byte instead of the EFA latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from disagg.cluster.config import Experiment

Link = tuple[str, str]


@dataclass(frozen=True)
class Topology:
    """Unit -> host placement and link capacities (bytes/s)."""

    unit_host: dict[str, str]
    capacity: dict[Link, float]
    has_core: bool
    intra_latency_s: dict[str, float] = field(default_factory=dict)  # host -> s, shared hosts

    def path(self, src_unit: str, dst_unit: str) -> tuple[Link, ...]:
        """Links a transfer from ``src_unit`` to ``dst_unit`` crosses: inside one host the two
        units' intra-host links when the host has them (shared hosts), else none."""
        src, dst = self.unit_host[src_unit], self.unit_host[dst_unit]
        if src == dst:
            intra = ((src_unit, "intra-out"), (dst_unit, "intra-in"))
            return intra if intra[0] in self.capacity else ()
        core: tuple[Link, ...] = (("core", "core"),) if self.has_core else ()
        return ((src, "egress"), *core, (dst, "ingress"))

    def latency_s(self, src_unit: str, dst_unit: str, network_latency_s: float) -> float:
        """One-way latency of a transfer: the host's intra-host latency inside a shared host,
        else the network's (EFA) latency, seconds."""
        src, dst = self.unit_host[src_unit], self.unit_host[dst_unit]
        return self.intra_latency_s.get(src, network_latency_s) if src == dst \
            else network_latency_s


def unit_names(kind: str, count: int) -> list[str]:
    """Names of a pool's units: ``prefill-0``, ``prefill-1``, ..."""
    return [f"{kind}-{i}" for i in range(count)]


def build_topology(exp: Experiment) -> Topology:
    """Hosts and links for an experiment's prefill and decode pools."""
    if exp.placement.same_host:
        return _shared_topology(exp)
    unit_host: dict[str, str] = {}
    capacity: dict[Link, float] = {}
    total_nic = 0.0
    for kind, pool in exp.pools.items():
        per_host = pool.hosts_units
        # a unit spanning several hosts (e.g. 4 CS-3 systems) brings each host's NIC
        span = -(-pool.chips_per_unit // pool.hardware.chips_per_host)
        nic = pool.host_nic_bytes_per_s * (span if pool.host_nic_gbps is None else 1)
        for i, unit in enumerate(unit_names(kind, pool.units)):
            host = f"{kind}-host-{i // per_host}"
            unit_host[unit] = host
            if (host, "egress") not in capacity:
                capacity[(host, "egress")] = nic
                capacity[(host, "ingress")] = nic
                total_nic += nic
    ratio = exp.fabric.core_oversubscription
    if ratio is not None:
        capacity[("core", "core")] = total_nic / ratio
    return Topology(unit_host, capacity, ratio is not None)


def _shared_topology(exp: Experiment) -> Topology:
    """Prefill then decode units packed by chips onto shared hosts, each host with one NIC (the
    prefill pool's) and each unit with intra-host links of chips x the one-way chip bandwidth."""
    unit_host: dict[str, str] = {}
    capacity: dict[Link, float] = {}
    hw = exp.first_pool.hardware
    host, used = 0, 0
    for kind, pool in exp.pools.items():
        for unit in unit_names(kind, pool.units):
            if used + pool.chips_per_unit > hw.chips_per_host:
                host, used = host + 1, 0
            used += pool.chips_per_unit
            unit_host[unit] = f"prefill-host-{host}"
            link = pool.chips_per_unit * pool.hardware.intra_host_copy_bytes_per_s
            capacity[(unit, "intra-out")] = capacity[(unit, "intra-in")] = link
    nic = exp.first_pool.host_nic_bytes_per_s
    hosts = sorted(set(unit_host.values()), key=lambda h: int(h.rsplit("-", 1)[1]))
    for h in hosts:
        capacity[(h, "egress")] = capacity[(h, "ingress")] = nic
    ratio = exp.fabric.core_oversubscription
    if ratio is not None:
        capacity[("core", "core")] = nic * len(hosts) / ratio
    latency = {h: hw.intra_host_latency_s for h in hosts}
    return Topology(unit_host, capacity, ratio is not None, latency)

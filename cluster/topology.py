"""Where units live: hosts per pool, each with an EFA NIC (egress and ingress links), and an
optional network core with an oversubscription ratio. Transfers inside one host skip the NIC.

Defaults come from the catalog (each with its source): a trn2.48xlarge holds 16 Trainium2 chips
behind 3,200 Gbps of EFA (Neuron docs trn2-arch), so TP4 units pack 4 per host; a CS-3 system has
~1.56 Tb/s of I/O (derived from CS-2's 1.2 Tb/s + 30%), and a unit pipelining k systems is one
host with k of those NICs. ``PoolConfig.host_nic_gbps`` replaces the NIC of a whole host (for a
k-system CS-3 unit: of the unit, not per system). docs/fabric.md describes the model."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.cluster.config import Experiment

Link = tuple[str, str]


@dataclass(frozen=True)
class Topology:
    """Unit -> host placement and link capacities (bytes/s)."""

    unit_host: dict[str, str]
    capacity: dict[Link, float]
    has_core: bool

    def path(self, src_unit: str, dst_unit: str) -> tuple[Link, ...]:
        """Links a transfer from ``src_unit`` to ``dst_unit`` crosses (empty inside one host)."""
        src, dst = self.unit_host[src_unit], self.unit_host[dst_unit]
        if src == dst:
            return ()
        core: tuple[Link, ...] = (("core", "core"),) if self.has_core else ()
        return ((src, "egress"), *core, (dst, "ingress"))


def unit_names(kind: str, count: int) -> list[str]:
    """Names of a pool's units: ``prefill-0``, ``prefill-1``, ..."""
    return [f"{kind}-{i}" for i in range(count)]


def build_topology(exp: Experiment) -> Topology:
    """Hosts and links for an experiment's prefill and decode pools."""
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

"""The fabric's view of where units live: the topology itself is pure cluster data
(:mod:`disagg.cluster.topology`), re-exported here for the fabric's modules, and the route of a
(source unit, destination unit) pair as the fabric uses it."""

from dataclasses import dataclass

from disagg.cluster.topology import Link, Topology, build_topology, unit_names

__all__ = ["Link", "Route", "Topology", "build_topology", "route_of", "unit_names"]


@dataclass(frozen=True, slots=True)
class Route:
    """What the fabric needs of a (source unit, destination unit) pair: the links crossed, the
    hosts, and the one-way latency, s (fixed for a run)."""

    path: tuple[Link, ...]
    src_host: str
    dst_host: str
    latency_s: float


def route_of(topology: Topology, src_unit: str, dst_unit: str, network_latency_s: float) -> Route:
    """The route from ``src_unit`` to ``dst_unit`` (``network_latency_s``: the EFA latency, s)."""
    return Route(topology.path(src_unit, dst_unit), topology.unit_host[src_unit],
                 topology.unit_host[dst_unit],
                 topology.latency_s(src_unit, dst_unit, network_latency_s))

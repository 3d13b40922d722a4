"""The fabric's view of where units live: the topology itself is pure cluster data
(:mod:`disagg.cluster.topology`), re-exported here for the fabric's modules."""

from disagg.cluster.topology import Link, Topology, build_topology, unit_names

__all__ = ["Link", "Topology", "build_topology", "unit_names"]

"""Fabric invariants of a run's results, from ``transfers.parquet`` and the resolved experiment:

- ``placement``: each transfer's ``src_host`` / ``dst_host`` are the hosts the topology puts its
  units on (``cluster/topology.py``; with ``[placement] same_host`` prefill and decode units
  share hosts);
- ``transfer_speed``: no transfer is faster than its path allows — ``modeled_end_s - start_s``
  is at least ``modeled_bytes`` / the narrowest link on its path (EFA NICs and core between
  hosts, the two units' intra-host links inside one) + the path's latency (intra-host or
  ``fabric.latency_s``). Link faults only lower capacities and the per-flow cap only lowers
  rates, so the bound holds under both.

Tolerance as in :mod:`~disagg.experiments.results.invariants`: ``TIME_EPS_S`` plus a relative
1e-9 of the end time (float sums of modeled durations).
"""

from __future__ import annotations

from typing import Any

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.config import Experiment
from disagg.cluster.topology import build_topology


Broken = tuple[str, str, str, int]
"""(invariant, message, unit, request id): the fields of a ``Violation``."""


def check_transfers(exp: Experiment, transfers: list[dict[str, Any]]) -> list[Broken]:
    """Broken ``placement`` and ``transfer_speed`` invariants (see the module docstring)."""
    topo = build_topology(exp)
    out: list[Broken] = []
    for t in transfers:
        src, dst = t["src_unit"], t["dst_unit"]
        if src not in topo.unit_host or dst not in topo.unit_host:
            continue  # a unit of another layout cannot send KV; the ledger checks speak to it
        hosts = (topo.unit_host[src], topo.unit_host[dst])
        if (t["src_host"], t["dst_host"]) != hosts:
            out.append((
                "placement", f"transfer {src} -> {dst} recorded on hosts {t['src_host']} -> "
                f"{t['dst_host']}, the topology puts them on {hosts[0]} -> {hosts[1]}",
                src, t["request_id"]))
            continue
        path = topo.path(src, dst)
        floor = topo.latency_s(src, dst, exp.fabric.latency_s)
        if path:
            floor += t["modeled_bytes"] / min(topo.capacity[link] for link in path)
        took = t["modeled_end_s"] - t["start_s"]
        if took < floor - TIME_EPS_S - 1e-9 * abs(t["modeled_end_s"]):
            out.append((
                "transfer_speed", f"{t['modeled_bytes']:.0f} B {src} -> {dst} took {took:.9f} s, "
                f"under the {floor:.9f} s its path allows", src, t["request_id"]))
    return out


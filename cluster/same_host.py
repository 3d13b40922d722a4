"""The rules of ``[placement] same_host`` (prefill and decode units sharing DGX-style hosts),
checked while the config validates; the placement itself is ``cluster/topology.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config validator calls this with the Experiment being validated
    from disagg.cluster.config import Experiment


def check_same_host(exp: Experiment) -> None:
    """``placement.same_host`` needs a prefill and a decode pool of one chip type, units that
    fit one host, and no per-pool units_per_host (hosts are packed by chips)."""
    if exp.colocated is not None:
        raise ValueError("placement.same_host: value true needs [prefill] and [decode]; a "
                         "[colocated] unit already does both phases on one host")
    names = {p.hardware.name for p in exp.pools.values()}
    if len(names) > 1:
        raise ValueError(f"placement.same_host: value true needs one hardware for both pools, "
                         f"got {', '.join(sorted(names))}; allowed: the same hardware")
    for kind, pool in exp.pools.items():
        if pool.chips_per_unit > pool.hardware.chips_per_host:
            raise ValueError(f"{kind}.chips_per_unit: value {pool.chips_per_unit} exceeds the "
                             f"{pool.hardware.chips_per_host} chips of one host; allowed with "
                             "placement.same_host: units within one host")
        if pool.units_per_host is not None:
            raise ValueError(f"{kind}.units_per_host: value {pool.units_per_host} is not allowed "
                             "with placement.same_host (hosts are packed by chips); allowed: "
                             "leave it out")

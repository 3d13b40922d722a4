"""One clock across machines: measure each node's clock offset to the driver (NTP style).

For each node, one actor there is asked for its ``time.time()`` a few times; with the request sent
at t1 and the answer back at t2 (driver clock), offset = remote - (t1 + t2) / 2, uncertain by
(t2 - t1) / 2. The probe with the shortest round trip wins. Every actor then shifts its emu clock
by its node's offset, so all time stamps share the driver's clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class Offset:
    """A node's clock minus the driver's, and the half round trip that bounds its error."""

    offset_s: float
    uncertainty_s: float


def measure_offsets(node_of: dict[str, str], handles: dict[str, Any], probes: int = 5
                    ) -> dict[str, Offset]:
    """Offset per node id, probing one actor per node ``probes`` times."""
    first: dict[str, str] = {}
    for name, node in node_of.items():
        first.setdefault(node, name)
    out = {}
    for node, name in first.items():
        best: Offset | None = None
        for _ in range(probes):
            t1 = time.time()
            remote = ray.get(handles[name].clock_probe.remote())
            t2 = time.time()
            cand = Offset(remote - (t1 + t2) / 2, (t2 - t1) / 2)
            if best is None or cand.uncertainty_s < best.uncertainty_s:
                best = cand
        assert best is not None
        out[node] = best
    return out

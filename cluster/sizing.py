"""How big a run will be before it starts: requests, timeseries rows and the memory they take.

A lower-bound estimate from the config alone (arrival window only, mean arrival rate), so that a
run which cannot fit on the machine is refused up front with the estimate instead of dying of a
MemoryError (or swapping) after minutes. The per-item byte costs are measured, not derived:

- ``BYTES_PER_REQUEST``: 200 B — fitted to issue 11's memory benchmark once results streamed to
  Parquet (``benchmarks/memory.py``: peak RSS 211 MiB at 10k requests of the quickstart cluster,
  385 MiB at 1M, so 184 B per added request — the planned requests the load generator holds —
  rounded up). Before streaming it was 30 kB (a 100k-request run peaked at 3.0 GB).
- ``BYTES_PER_TIMESERIES_ROW``: 210 B — fitted to issue 12's report that ``sample_interval_s =
  1e-6`` took 7.3 GB for a 5 s run of the quickstart cluster (7 series: 3 units and 4 links, so
  3.5e7 rows).

- ``BYTES_PER_OPEN_REQUEST``: 2 kB — a request in flight (queued in a unit, in the router's and
  collector's books): a closed-loop run of this repo's test cluster peaked at 125 MB with 2,000
  users and 159 MB with 20,000 (virtual engine, 2 s), 1.9 kB per added user, rounded up. A
  closed-loop workload has ``users`` requests in flight at its start.

Beyond memory, a run is refused above ``MAX_TIMESERIES_ROWS`` rows (10 million): a tiny
``sample_interval_s`` makes the run spend most of its time and disk on bins (2 million rows took
1.8 s and 0.4 GB here; the issue-29 sweep's case took 84 s and 2.3 GB).

The timeseries figure predates streaming (bins are now drained as the run goes), so it
overestimates; it is kept until a run with a tiny ``sample_interval_s`` is measured again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from disagg.cluster.config import Experiment

BYTES_PER_REQUEST = 200.0
BYTES_PER_TIMESERIES_ROW = 210.0
BYTES_PER_OPEN_REQUEST = 2000.0
MAX_TIMESERIES_ROWS = 1e7


@dataclass(frozen=True)
class RunSize:
    """Lower-bound size of a run: requests submitted, timeseries rows, peak bytes in memory."""

    requests: float
    timeseries_rows: float
    series: int
    open_requests: float = 0.0  # in flight at once (closed loop: its users)

    @property
    def bytes(self) -> float:
        return (self.requests * BYTES_PER_REQUEST + self.timeseries_rows * BYTES_PER_TIMESERIES_ROW
                + self.open_requests * BYTES_PER_OPEN_REQUEST)

    def describe(self) -> str:
        """One line: the estimate and what it is made of."""
        users = (f" + {self.open_requests:.3g} closed-loop users x {BYTES_PER_OPEN_REQUEST:g} B"
                 if self.open_requests else "")
        return (f"~{self.bytes / 1e9:.1f} GB ({self.requests:.3g} requests x "
                f"{BYTES_PER_REQUEST:g} B + {self.timeseries_rows:.3g} timeseries rows x "
                f"{BYTES_PER_TIMESERIES_ROW:g} B{users})")


def estimate_run_size(exp: Experiment, links: int) -> RunSize:
    """The size of ``exp`` over its arrival window (``links``: fabric links of its topology), or
    until ``workload.max_requests`` have arrived. A closed loop counts its users, each with one
    request in flight at the start (a lower bound: they send more as theirs end); a trace at its
    own speed counts 0 requests."""
    rate = float(getattr(exp.workload, "rate_per_s", None) or 0.0)
    cap = getattr(exp.workload, "max_requests", None)
    duration = exp.experiment.duration_s
    if rate > 0 and cap is not None:
        duration = min(duration, cap / rate)
    series = sum(pool.units for pool in exp.pools.values()) + links
    points = math.ceil(duration / exp.output.sample_interval_s)
    users = float(getattr(exp.workload, "users", 0) or 0)
    return RunSize(rate * duration + users, float(points) * series, series, users)

"""Router regret: how much earlier a request's first token would have come had the router sent
it to the best other prefill unit.

Definition (per request that got a first token). Each prefill unit's recorded schedule is the set
of its batches ``[prefill_start_s, first_token_s]`` from requests.parquet. The *hindsight first
token* of request r on another unit v is ``t + d``, where d is r's prefill time run alone
(``cluster.hardware.prefill.prefill_time``) and t is the earliest time >= r's ready time (arrival plus the two
modeled control-message hops, loadgen -> router -> unit) at which v is idle for d, every request
of v keeping its recorded schedule. That alternative is feasible: it delays nobody else. The
router regret of r compares it with what happened:

    regret_s = max(0, first_token_s - min over units v != chosen of hindsight(v))

It is 0 when no other unit would have given r its first token earlier. Bound: every hindsight
first token is at least ready + d > arrival, so ``regret_s <= first_token_s - arrival_s - d
- hops < TTFT`` — the regret never exceeds the time to first token it claims to shorten. (An
earlier definition subtracted a hindsight slot on the chosen unit too; that slot, fitted around
batches the request itself shared, could lie after the recorded first token, and p99 regret came
out several times p99 TTFT.) It ignores knock-on effects (other requests moving into the gap r
leaves) and the chance to join another unit's batch: a per-request figure, not a bound on what a
hindsight-optimal schedule of all requests together would achieve.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.config import Experiment
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.topology import unit_names

_EPS_S = TIME_EPS_S


@dataclass(frozen=True)
class UnitSchedule:
    """One prefill unit's batches, sorted: ``starts_s[i]`` to ``ends_s[i]`` with ``sizes[i]`` requests."""

    starts_s: list[float]
    ends_s: list[float]
    sizes: list[int]

    def first_fit_end_s(self, ready_s: float, duration_s: float, skip: int | None) -> float:
        """End of the earliest idle span of ``duration_s`` starting at or after ``ready_s``,
        ignoring batch ``skip`` (None: every batch counts)."""
        t = ready_s
        i = bisect_right(self.ends_s, t + _EPS_S)
        while i < len(self.starts_s):
            if i != skip:
                if self.starts_s[i] >= t + duration_s - _EPS_S:
                    break
                t = max(t, self.ends_s[i])
            i += 1
        return t + duration_s


def schedules(rows: list[dict[str, Any]], units: list[str]) -> dict[str, UnitSchedule]:
    """Each unit's batches, from the requests' prefill start and first-token times."""
    batches: dict[str, dict[tuple[float, float], int]] = {u: defaultdict(int) for u in units}
    for r in rows:
        if r.get("prefill_unit") in batches and r.get("first_token_s") is not None:
            batches[r["prefill_unit"]][(r["prefill_start_s"], r["first_token_s"])] += 1
    out = {}
    for unit, spans in batches.items():
        keys = sorted(spans)
        out[unit] = UnitSchedule([k[0] for k in keys], [k[1] for k in keys], [spans[k] for k in keys])
    return out


def request_regrets_s(rows: list[dict[str, Any]], exp: Experiment) -> list[float]:
    """Router regret in emu seconds of every request that got a first token (input order);
    none for a colocated pool (its prefills share iterations with decodes: no batch schedule)."""
    if exp.prefill is None:
        return []
    units = unit_names("prefill", exp.prefill.units)
    sched = schedules(rows, units)
    hop_s = 2 * exp.experiment.control_delay_s
    out = []
    for r in rows:
        chosen = r.get("prefill_unit")
        if chosen not in sched or r.get("first_token_s") is None:
            continue
        d = prefill_time([r["prompt_tokens"]], exp.model, exp.prefill.hardware,
                         exp.prefill.chips_per_unit).seconds
        ready = r["arrival_s"] + hop_s
        others = [sc.first_fit_end_s(ready, d, None) for u, sc in sched.items() if u != chosen]
        out.append(max(0.0, r["first_token_s"] - min(others, default=r["first_token_s"])))
    return out


def regret_summary(regrets_s: list[float]) -> dict[str, float | None]:
    """mean / p99 regret in ms and the share of requests with any regret (> 1 microsecond)."""
    if not regrets_s:
        return {"mean_regret_ms": None, "p99_regret_ms": None, "regret_share": None}
    v = np.asarray(regrets_s, dtype=np.float64)
    return {"mean_regret_ms": float(v.mean() * 1e3), "p99_regret_ms": float(np.percentile(v, 99) * 1e3),
            "regret_share": float((v > 1e-6).mean())}

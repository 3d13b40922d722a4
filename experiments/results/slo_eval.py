"""How a run meets percentile and slowdown SLOs (``[slo]``, :mod:`disagg.cluster.slo`).

For each target (class, metric, percentile P, limit) the share F of the class's *submitted*
requests whose metric is within the limit is counted (a request that did not complete is never
within). The target is met when F >= P / 100 — the P-th percentile over submitted requests is at
most the limit. With percentile targets:

- ``slo_attainment`` = min over targets of min(1, F / (P / 100)): 1.0 exactly when every target
  is met, falling continuously as the worst target slips (capacity searches for 1.0);
- ``request_goodput`` = completed requests per second when every target is met, else 0 (a run
  that misses a percentile SLO delivers no goodput, as MLPerf rejects such a run);
- a slowdown is the request's latency over the same request alone on the reference unit: TTFT
  alone = prefill_time of its prompt (batch 1); TPOT alone = one decode step at batch 1 with the
  context at prompt + output / 2; E2E alone = TTFT alone + (output - 1) x TPOT alone
  (``cluster/hardware/perf.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from disagg.cluster.hardware.perf import decode_step_times
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.sketch import QuantileSketch
from disagg.cluster.slo import ReferenceUnit, SloConfig, Target


def reference_latencies(prompts: NDArray[Any], outputs: NDArray[Any], model: ModelSpec,
                        ref: ReferenceUnit) -> dict[str, NDArray[np.float64]]:
    """Each request's latencies alone on the reference unit: ttft, tpot, e2e (seconds)."""
    p = np.asarray(prompts, dtype=np.int64)
    o = np.asarray(outputs, dtype=np.int64)
    hw = ref.profile
    ttft = np.zeros(len(p))
    for length in np.unique(p):
        ttft[p == length] = prefill_time([int(length)], model, hw, ref.chips).seconds
    tpot = decode_step_times(np.ones(len(p)), p + o / 2.0, model, hw, ref.chips)
    return {"ttft": ttft, "tpot": tpot, "e2e": ttft + np.maximum(o - 1, 0) * tpot}


@dataclass
class _Count:
    """One target's running count: submitted requests, those within the limit, the values."""

    target: Target
    submitted: int = 0
    within: int = 0
    values: QuantileSketch = field(default_factory=QuantileSketch)


class SloTally:
    """Running counts per percentile target over batches of request rows."""

    def __init__(self, slo: SloConfig, model: ModelSpec) -> None:
        self.slo, self.model = slo, model
        self.counts: dict[tuple[str, str], _Count] = {}

    def add(self, classes: list[str], class_codes: NDArray[Any], done: NDArray[np.bool_],
            prompts: NDArray[Any], outputs: NDArray[Any],
            latencies: dict[str, NDArray[np.float64]]) -> None:
        """Fold one batch: its class names and per-row codes, completion mask, lengths and
        measured latencies (NaN where not completed)."""
        for k, name in enumerate(classes):
            mine = class_codes == k
            for target in self.slo.targets_for(name):
                self._add(target, mine, done, prompts, outputs, latencies)

    def _add(self, target: Target, mine: NDArray[np.bool_], done: NDArray[np.bool_],
             prompts: NDArray[Any], outputs: NDArray[Any],
             latencies: dict[str, NDArray[np.float64]]) -> None:
        count = self.counts.setdefault((target.slo_class, target.label), _Count(target))
        ok = mine & done
        values = latencies[target.metric][ok]
        if target.reference is not None:
            alone = reference_latencies(prompts[ok], outputs[ok], self.model, target.reference)
            values = np.divide(values, alone[target.metric], out=np.zeros_like(values),
                               where=alone[target.metric] > 0)
        count.submitted += int(mine.sum())
        count.within += int((values <= target.limit * (1 + 1e-12)).sum())
        count.values.add_many(values)

    def attainment(self, slo_class: str | None = None) -> float:
        """min over targets (of one class, or all) of min(1, F / (P / 100)); 1.0 = all met."""
        return min((_share(c) for c in self.counts.values()
                    if slo_class is None or c.target.slo_class == slo_class), default=1.0)

    def report(self, completed_per_s: float) -> dict[str, Any]:
        """summary.json entries: the targets with their values, whether all are met, the
        attainment and the goodput under this definition."""
        rows = []
        for c in self.counts.values():
            t = c.target
            share = c.within / c.submitted if c.submitted else 1.0
            rows.append({"slo_class": t.slo_class, "target": t.label, "limit": t.limit,
                         "value": _percentile_over_submitted(c), "within_share": share,
                         "met": share >= t.percentile / 100 - 1e-12})
        met = all(r["met"] for r in rows)
        return {"slo_definition": "percentiles", "slo_targets": rows, "slo_targets_met": met,
                "slo_attainment": self.attainment(),
                "request_goodput": completed_per_s if met else 0.0}


def _share(c: _Count) -> float:
    """min(1, F / (P / 100)) of one target: 1.0 when it is met."""
    within = c.within / c.submitted if c.submitted else 1.0
    return min(1.0, within / (c.target.percentile / 100))


def _percentile_over_submitted(c: _Count) -> float | None:
    """The P-th percentile of the target's metric over submitted requests (those that did not
    complete counting as infinite): None when it is infinite or nothing was submitted."""
    v, _ = c.values.values()
    need = c.target.percentile / 100 * c.submitted
    if not c.submitted or need > len(v) or len(v) == 0:
        return None
    q = min(100.0, 100.0 * need / len(v))
    return float(np.percentile(np.sort(v), q))

"""How a decode unit's running batch steps: the boundaries of its next run of iterations and the
tokens each request gains in them — one per step (plain decoding), or drawn per step per request
with speculative decoding (``spec_steps.py``). With paged KV the run stops before the first step
whose blocks do not fit, and when not even the next step fits the unit preempts
(``paged_kv.py``) until it does. Mixed into :class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from disagg.actors.components.decode_late import Running
from disagg.actors.components.spec_steps import SpecPlan, SpecStepper
from disagg.actors.components.speed import SpeedSchedule
from disagg.cluster.hardware.perf import decode_step_times
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.paged_kv import PagedKv


class BatchSteps:
    """The decode unit's stepping: plan boundaries, then the tokens of the steps committed."""

    model: ModelSpec
    hw: HardwareProfile
    chips: int
    t: float
    running: dict[int, Running]
    _context: int
    speed: SpeedSchedule
    spec: SpecStepper | None
    _spec_plan: SpecPlan | None
    paged: PagedKv | None
    # the unit's (PagedDecode's); annotations only, so no stub overrides them in the MRO
    _preempt_latest: Callable[[], None]
    _take_stall: Callable[[], float]

    def _boundaries(self) -> np.ndarray:
        """End times (emu s) of the next iterations of the running batch, up to and including
        the first at which a request finishes (paged KV: before the first that does not fit)."""
        while True:
            steps_s, gained = self._plan()
            if self.paged is None:
                fit = len(steps_s)
            else:
                context = np.array([r.context for r in self.running.values()])
                fit = (self.paged.steps_that_fit_plain(context, len(steps_s)) if gained is None
                       else self.paged.steps_that_fit(context, gained))
            if fit > 0:
                break
            self._preempt_latest()  # not even the next step can grow: make room
        if self._spec_plan is not None:
            self._spec_plan = SpecPlan(self._spec_plan.gained[:fit], self._spec_plan.step_s[:fit])
        steps_s = steps_s[:fit].copy()
        steps_s[0] += self._take_stall()
        return self.t + np.cumsum(steps_s)

    def _plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Step durations (emu s, straggler factor applied) and tokens gained per step and
        request (batch order) up to the first finish (None: one each, plain decoding)."""
        factor = self.speed.factor_at(self.t)
        if self.spec is not None:
            runs = list(self.running.values())
            self._spec_plan = self.spec.plan([r.request for r in runs], [r.left for r in runs],
                                             self._context, factor)
            return self._spec_plan.step_s, self._spec_plan.gained
        steps = min(r.left for r in self.running.values())
        b = len(self.running)
        ctx = self._context + b * np.arange(steps, dtype=np.float64)
        steps_s = decode_step_times(b, ctx, self.model, self.hw, self.chips)
        return (steps_s * factor if factor != 1.0 else steps_s), None

    def _gained(self, steps: int) -> np.ndarray:
        """Tokens each running request (batch order) gained in the first ``steps`` planned
        iterations (committing them)."""
        if self.spec is None or self._spec_plan is None:
            return np.full(len(self.running), steps, dtype=np.int64)
        self.spec.commit([r.request for r in self.running.values()], steps)
        gained = self._spec_plan.gained[:steps].sum(axis=0)
        self._spec_plan = None
        return gained

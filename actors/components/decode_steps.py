"""How a decode unit's running batch steps: the boundaries of its next run of iterations and the
tokens each request gains in them — one per step (plain decoding), or drawn per step per request
with speculative decoding (``spec_steps.py``). With paged KV the run stops before the first step
whose blocks do not fit, and when not even the next step fits the unit preempts
(``paged_kv.py``) until it does. Mixed into :class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import repeat
from operator import attrgetter

import numpy as np

from disagg.actors.components.decode_late import Running
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.spec_steps import SpecPlan, SpecStepper
from disagg.actors.components.speed import SpeedSchedule
from disagg.cluster.hardware.decode_plan import decode_plan_times
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.paged_kv import PagedKv

_tokens_left = attrgetter("left")  # a running request's tokens to go (a C call, not a genexpr)


class BatchSteps:
    """The decode unit's stepping: plan boundaries, then the tokens of the steps committed
    (:meth:`_step_batch`)."""

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
    records: dict[int, RequestDraft]
    _left: int
    kv_used_bytes: float
    # the unit's (PagedDecode's); annotations only, so no stub overrides them in the MRO
    _preempt_latest: Callable[[], None]
    _stall_s: float  # emu s the next step waits first (PagedDecode's)

    def _boundaries(self) -> np.ndarray:
        """The committed boundary, then the end times (emu s) of the next iterations of the
        running batch, up to and including the first at which a request finishes (paged KV:
        before the first that does not fit): each iteration runs from one to the next."""
        while True:
            steps_s, gained = self._plan()
            if self.paged is None:
                fit = len(steps_s)
            elif gained is None:
                fit, b = len(steps_s), len(self.running)  # the last step needs the most blocks
                if not self.paged.fits_any_split(self._context + b * fit, b):
                    fit = self.paged.steps_that_fit_plain(
                        [r.context for r in self.running.values()], fit)
            else:
                fit = self.paged.steps_that_fit(
                    np.array([r.context for r in self.running.values()]), gained)
            if fit > 0:
                break
            self._preempt_latest()  # not even the next step can grow: make room
        if self._spec_plan is not None:
            self._spec_plan = SpecPlan(self._spec_plan.gained[:fit], self._spec_plan.step_s[:fit])
            steps_s = steps_s[:fit].copy()  # the plan keeps its own step times
        elif fit < len(steps_s):  # (all fit in most runs: no view to make)
            steps_s = steps_s[:fit]  # planned here, owned here
        stall = self._stall_s  # recompute or swap of resumed requests: taken by this run
        if stall:
            self._stall_s = 0.0
            steps_s[0] += stall
        edges = np.empty(fit + 1)
        edges[0] = self.t
        ends = edges[1:]
        np.add.accumulate(steps_s, out=ends)  # cumsum's ufunc, without cumsum's overhead
        ends += self.t  # t + the cumulative sum
        return edges

    def _plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Step durations (emu s, straggler factor applied) and tokens gained per step and
        request (batch order) up to the first finish (None: one each, plain decoding)."""
        factor = self.speed.factor_at(self.t)
        if self.spec is not None:
            runs = list(self.running.values())
            self._spec_plan = self.spec.plan([r.request for r in runs], [r.left for r in runs],
                                             self._context, factor)
            return self._spec_plan.step_s, self._spec_plan.gained
        steps = min(map(_tokens_left, self.running.values()))
        steps_s = decode_plan_times(len(self.running), self._context, steps, self.model, self.hw,
                                    self.chips)
        if factor != 1.0:
            steps_s *= factor
        return steps_s, None

    def _gained(self, steps: int) -> list[int]:
        """Tokens each running request (batch order) gained in the first ``steps`` planned
        iterations (committing them)."""
        if self.spec is None or self._spec_plan is None:
            return [steps] * len(self.running)
        self.spec.commit([r.request for r in self.running.values()], steps)
        gained: list[int] = self._spec_plan.gained[:steps].sum(axis=0).tolist()
        self._spec_plan = None
        return gained

    def _step_batch(self, steps: int, first_s: float) -> tuple[list[int], int, int]:
        """Every running request runs ``steps`` iterations (one token each, or its accepted
        tokens with speculative decoding), the first ending at ``first_s``: the ids that
        finished, how many got their first decode token now, and the tokens generated."""
        finished = []
        joined = 0
        records, paged, kv_used = self.records, self.paged, self.kv_used_bytes
        if paged is not None:
            block_tokens, block_bytes = paged.block_tokens, paged.block_bytes
        if self.spec is None:  # plain decoding: ``steps`` tokens each (no list of them built)
            gains: Iterable[tuple[tuple[int, Running], int]] = zip(self.running.items(),
                                                                    repeat(steps))
            tokens = steps * len(self.running)
        else:
            gained = self._gained(steps)
            gains = zip(self.running.items(), gained, strict=True)
            tokens = sum(gained)
        for (rid, r), n in gains:
            rec = records[rid]
            if rec.first_decode_token_s is None:
                rec.first_decode_token_s = first_s
                joined += 1
            r.left -= n
            r.context += n
            if paged is not None:  # _grow and PagedKv.bytes_for, inlined: per request per run
                new = -(-r.context // block_tokens) * block_bytes
                kv_used += new - r.kv_bytes  # the same additions in the same order
                r.kv_bytes = new
            if r.left <= 0:
                finished.append(rid)
        self.kv_used_bytes = kv_used
        self._left -= tokens
        self._context += tokens
        return finished, joined, tokens

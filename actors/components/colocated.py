"""A colocated unit: one GPU server doing prefill and decode itself, vLLM / Sarathi style.

Continuous batching with chunked prefill: each iteration runs one token for every decoding
request plus prefill chunks up to the token budget (``policies/chunked_prefill.py``), and lasts
``mixed_iteration_s`` of that batch (``cluster/hardware/mixed.py``):
``decode_step_time(b, ctx) + max(0, R(F_d + F_c, M_d + M_c) - R(F_d, M_d))``. A request whose last
chunk runs in an iteration has its first token at that iteration's end and decodes from the next
one. While no prefill is waiting the iterations are decode-only and computed arithmetically, as
on a decode unit (docs/design.md, timing rule 2); a request arriving mid-iteration joins at the next
boundary. The router assigns a request to the unit once; no KV crosses the fabric. KV memory
(prompt + output tokens) is reserved when a request's prefill starts. An assignment that reaches
the unit after it committed iterations past the assignment's modeled arrival (lag, ray engine)
joins at the current boundary and counts as a late decision (no late join at a past boundary:
the past iterations' durations would change); the time gate judges lateness
(``TimeGate.is_late``). A request that waited for room was not late and is never back-dated.
An injected straggler (``SpeedChanged``) slows iterations from the first boundary at or after its
time, as on a decode unit. What the unit sends out (a request's end with its records, load
reports) is ``colocated_report.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from disagg.actors.components.colocated_kv import ColocatedKv, Decoding, Prefilling, waiting_order
from disagg.actors.components.colocated_report import ColocatedReports
from disagg.actors.components.colocated_steps import ColocatedSteps, plan_prefill_first
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.spec_steps import SpecPlan, SpecStepper
from disagg.actors.components.speed import SpeedSchedule
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import TIME_EPS_S, Clock, Component
from disagg.cluster.hardware.mixed import mixed_iteration_s
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import PrefillAssigned, SpeedChanged
from disagg.cluster.paged_kv import PagedKv
from disagg.cluster.sketch import QuantileSketch
from disagg.cluster.wake import Wake
from disagg.policies.chunked_prefill import WaitingPrefill, plan_chunks


class ColocatedUnit(ColocatedReports, ColocatedSteps, ColocatedKv, Component):
    """Runs its requests' chunked prefills and decodes in shared iterations. It passes an
    iteration boundary ``b`` at its gate's release time for ``b``, as the decode unit."""

    def __init__(
        self, name: str, clock: Clock, model: ModelSpec, hw: HardwareProfile, chips: int,
        kv_capacity_bytes: float, token_budget: int, max_running: int,
        control_delay_s: float = 0.0, report_interval_s: float = 0.0,
        spec: SpecStepper | None = None, scheduler: str = "vllm_v1", paged: PagedKv | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.model, self.hw, self.chips = model, hw, chips
        self.kv_capacity_bytes = kv_capacity_bytes
        self.token_budget, self.max_running = token_budget, max_running
        self.control_delay_s = control_delay_s
        self.reporter = LoadReporter(clock, report_interval_s, self._load,
                                     self.gate_release)
        self.waiting: list[Prefilling] = []
        self.decoding: dict[int, Decoding] = {}
        self.kv: dict[int, float] = {}  # KV bytes per started request, in start order
        self.paged = paged  # paged KV blocks (None: prompt + output reserved at prefill start)
        self._unseen: list[float] = []  # arrival times not yet offered to an iteration plan
        self.t = 0.0  # the iteration boundary the state is committed at
        self.wake = Wake()
        self.log = UnitLog()
        self.records: dict[int, RequestDraft] = {}  # in flight here: this unit's fields
        self._carried: dict[int, tuple[Any, ...]] = {}  # in flight here: records that came with it
        self.itl = QuantileSketch()  # iteration durations (emu s), weighted by decoding requests
        self.tokens_out = 0
        self.busy_s = 0.0
        self.live_feed: list[tuple[Any, ...]] | None = None
        self.speed = SpeedSchedule()  # an injected straggler's slow-down over emu time
        self.spec = spec  # speculative decoding's per-request draws (None: plain decoding)
        self._spec_plan: SpecPlan | None = None
        self._plan_ids: tuple[int, ...] = ()
        self.prefill_first = scheduler == "vllm_v0"  # v0: prefill-only iterations stall decodes
        self.handlers = {PrefillAssigned: self._on_assigned, SpeedChanged: self._on_speed}

    def _draft(self, rid: int) -> RequestDraft:
        """Request ``rid``'s draft here (a new one if it has none yet)."""
        draft = self.records.get(rid)
        if draft is None:
            draft = self.records[rid] = RequestDraft()
        return draft

    def _on_speed(self, msg: SpeedChanged) -> None:
        """An injected straggler: iterations from the first boundary at or after ``sent_s`` take
        ``factor`` x longer (a running plan is cut there), as on a decode unit."""
        self.speed.change(msg.sent_s, msg.factor)
        self.wake.set()

    def _on_assigned(self, msg: PrefillAssigned) -> None:
        r, queued_s = msg.request, msg.sent_s + self.control_delay_s
        self._carried[r.request_id] = msg.records
        if self._kv_never_fits(r):
            self._end(r, "failed", "kv_exceeds_unit_capacity", queued_s)
            return
        if self.gate.is_late(queued_s, max(self.last_decision_s, self.t)):
            self.late_decisions += 1  # joins at the current boundary (the past is not redone)
        self.waiting.append(Prefilling(r, queued_s))
        self._unseen.append(queued_s)
        self.waiting.sort(key=waiting_order)
        self.log.state(queued_s, len(self.waiting), len(self.decoding), self.kv_used_bytes)
        self.wake.set()

    # -- the iteration loop ---------------------------------------------------------------
    async def run(self) -> None:
        while True:
            if not self.decoding and not self.waiting:
                self.wake.clear()
                await self.wake.wait()
                continue
            if not self.decoding and not any(w.started for w in self.waiting):
                t = max(self.t, self.waiting[0].queued_s)
                if await self.hold_until(t, self.wake):
                    continue  # a request came during the hold: plan from the earliest again
                self.t = t
            self._make_room()
            chunks = self._plan()
            if chunks:
                await self._mixed(chunks)
            elif self.decoding:
                await self._decode_run()
            else:
                await self._wait_for_arrival()

    def _plan(self) -> tuple[tuple[Prefilling, int], ...]:
        self._unseen = [q for q in self._unseen if q > self.t + TIME_EPS_S]
        eligible = [w for w in self.waiting if w.queued_s <= self.t + TIME_EPS_S]
        queue = tuple(WaitingPrefill(w.request.request_id, w.tokens - w.done,
                                     w.started, self._kv_at_start(w)) for w in eligible)
        planner = plan_prefill_first if self.prefill_first else plan_chunks
        plan = planner(queue, len(self.decoding), self.token_budget, self.max_running,
                       self._kv_free())
        by_id = {w.request.request_id: w for w in eligible}
        return tuple((by_id[rid], tokens) for rid, tokens in plan.chunks)

    async def _wait_for_arrival(self) -> None:
        later = [w.queued_s for w in self.waiting if w.queued_s > self.t + TIME_EPS_S]
        if not later:
            raise RuntimeError(f"{self.name}: a waiting request fits in no empty unit")
        self.wake.clear()
        if not await self.clock.wait_until(self.gate.release_s(min(later)), self.wake):
            self.t = min(later)

    async def _mixed(self, chunks: tuple[tuple[Prefilling, int], ...]) -> None:
        """One iteration with prefill chunks: sleep until its end, then apply it."""
        start = self.t
        self.decide_at(start)
        for w, _ in chunks:
            if not w.started:
                w.started = True
                self.kv[w.request.request_id] = self._kv_at_start(w)
                if w.resume is None:
                    self._draft(w.request.request_id).prefill_start_s = start
        decodes = not self.prefill_first  # v0: the decodes stall during a prefill iteration
        b = len(self.decoding) if decodes else 0
        ctx = sum(d.context for d in self.decoding.values()) if decodes else 0
        end = start + self.speed.factor_at(start) * (mixed_iteration_s(
            b, ctx, [w.done for w, _ in chunks], [c for _, c in chunks],
            self.model, self.hw, self.chips) + (self._spec_extra_s() if decodes else 0.0))
        self._changed(start)
        await self.clock.sleep_until(self.gate.release_s(end))
        self.act_at(end)
        firsts = 0
        for w, c in chunks:
            w.done += c
            if w.done >= w.tokens:
                firsts += self._first_token(w, end)
        self._advance(1, np.array([end]), start, extra_tokens=firsts, decodes=decodes)

    def _first_token(self, w: Prefilling, end: float) -> int:
        """A prefill ended at ``end``: the request's first token (1), or a preempted request's
        recompute, after which it decodes on (0 tokens)."""
        r = w.request
        self.waiting.remove(w)
        if w.resume is not None:
            self.decoding[r.request_id] = Decoding(r, *w.resume, since_s=end)
            return 0
        rec = self._draft(r.request_id)
        rec.first_token_s = rec.decode_start_s = end
        if self.live_feed is not None:
            self.live_feed.append(("first", r.request_id, r.arrival_s, end, r.ttft_slo_s,
                                   r.output_tokens))
        if r.output_tokens <= 1:
            self._finish(r, end)
        else:  # decodes from the next iteration on
            self.decoding[r.request_id] = Decoding(r, r.output_tokens - 1, r.prompt_tokens + 1,
                                                   since_s=end)
        return 1

    async def _decode_run(self) -> None:
        """Decode-only iterations until a request finishes or one arrives (then its boundary)."""
        bounds = self._decode_bounds()
        idx = len(bounds) - 1
        while True:
            if self._unseen:  # an arrival joins at the first boundary at or after it
                first = max(min(self._unseen), self.t)
                idx = min(idx, int(np.searchsorted(bounds, first, side="left")))
            change = self.speed.next_change_after(self.t)
            if change is not None:  # a new speed applies from the first boundary at or after it
                idx = min(idx, int(np.searchsorted(bounds, change, side="left")))
            self.wake.clear()
            if not await self.clock.wait_until(self.gate.release_s(float(bounds[idx])), self.wake):
                break
        self.act_at(float(bounds[idx]))
        self._advance(idx + 1, bounds, self.t)

    def _advance(self, steps: int, bounds: np.ndarray, start: float, extra_tokens: int = 0,
                 decodes: bool = True) -> None:
        """Commit ``steps`` iterations ending at ``bounds``: the decodes that ran in them each
        gain ``steps`` tokens, or their accepted tokens (requests that just had their first token
        did not run in them; none ran in a vLLM-v0 prefill iteration)."""
        self.t = float(bounds[steps - 1])
        running = [d for d in self.decoding.values()
                   if d.since_s < self.t - TIME_EPS_S] if decodes else []
        gained = self._decode_gained(running, steps)
        b = len(running)
        durations = np.diff(np.concatenate(([start], bounds[:steps])))
        joined = [d for d in running
                  if self.records[d.request.request_id].first_decode_token_s is None]
        weights = np.full(len(durations), float(b))
        weights[0] = b - len(joined)  # a first decode token's gap counts from its first token
        self.itl.add_many(durations, weights)
        tokens = sum(gained.values())
        self.log.work(start, self.t, tokens + extra_tokens, b)
        self.tokens_out += tokens + extra_tokens
        self.busy_s += self.t - start
        for d in joined:
            self.records[d.request.request_id].first_decode_token_s = float(bounds[0])
        for d in running:
            d.left -= gained[d.request.request_id]
            d.context += gained[d.request.request_id]
            self._grow(d)
            if d.left <= 0:
                del self.decoding[d.request.request_id]
                if self.spec is not None:
                    self.spec.forget(d.request)
                if self.live_feed is not None:
                    self.live_feed.append(("last", d.request.request_id, self.t,
                                           d.request.output_tokens, d.request.tpot_slo_s))
                self._finish(d.request, self.t)
        self._changed(self.t)

    def results(self) -> dict[str, Any]:
        out = super().results()
        out.update(log=self.log.as_dict(), tokens_out=self.tokens_out, itl=self.itl.state())
        return out

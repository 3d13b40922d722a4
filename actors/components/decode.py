"""A decode unit: one CS-3 pipeline (or GPU server) running continuous batching.

Iteration times are arithmetic (docs/design.md, timing rule 2): between visible events — a request
finishing, one joining, a message arriving — the batch is fixed, so the boundaries of the next k
iterations are a cumulative sum of modeled step times. The unit sleeps until the next boundary at
which something changes; a request that becomes ready mid-iteration joins at the next boundary.
KV memory is reserved on admission (prompt + output tokens); a request waits until it fits.
With ``decode_keep``, finished prompts' blocks stay in free KV memory (``kept_kv.py``).
A request's ``DecodeRecord`` (admission, first decode token, last token, real payload) goes to the
collector with its ``RequestEnded``, after the records that came with its KV (``decode_report.py``,
with the load reports). How the KV comes in (from the object store, with or without a task) is
``kv_intake.py``; cancellations and the gateway's notices under ``disagg serve`` are
``decode_serve.py``.
"""

from __future__ import annotations

import bisect
from operator import attrgetter
from typing import Any

import numpy as np

from disagg.actors.components.decode_late import BoundaryLoad, LateJoins, Running
from disagg.actors.components.decode_report import DecodeReports
from disagg.actors.components.decode_serve import ServeHooks
from disagg.actors.components.decode_steps import BatchSteps
from disagg.actors.components.decode_timers import BoundaryTimers
from disagg.actors.components.kept_kv import KeptKv
from disagg.actors.components.kv_intake import KvIntake
from disagg.actors.components.paged_kv import PagedDecode
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.spec_steps import SpecPlan, SpecStepper
from disagg.actors.components.speed import SpeedSchedule
from disagg.actors.components.store import ObjectStore
from disagg.actors.components.token_feed import TokenFeed
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import TIME_EPS_S, Clock
from disagg.cluster.errors import CapacityExceeded
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import KvDelivered, KvPrefetch, RequestCancelled, SpeedChanged
from disagg.cluster.paged_kv import PagedKv
from disagg.cluster.sketch import QuantileSketch
from disagg.cluster.wake import Wake
from disagg.fabric.payload import KvMarker, PayloadError, verify_payload
from disagg.policies.base import DecodeAdmissionPolicy, DecodeState, PendingDecode

_ready_at = attrgetter("ready_s")  # a pending request's sort key (no lambda call per compare)
_kv_bytes_of = attrgetter("kv_bytes")  # a pending request's KV bytes
_tpot_target = attrgetter("request.tpot_slo_s")  # a running request's TPOT target, s
INF = float("inf")


class DecodeUnit(ServeHooks, DecodeReports, LateJoins, BatchSteps, BoundaryTimers, PagedDecode,
                 KvIntake):
    """Runs admitted requests' decode iterations and reports completions to the collector.
    It passes iteration boundary ``b`` at its gate's release time for ``b`` (with a hold, ray
    engine: later, so a KV that arrives within the hold joins at its exact boundary); a KV that
    comes later still joins where the gate says (``decode_late.py``)."""

    def __init__(
        self, name: str, clock: Clock, model: ModelSpec, hw: HardwareProfile, chips: int,
        policy: DecodeAdmissionPolicy, store: ObjectStore, kv_capacity_bytes: float,
        control_delay_s: float = 0.0, report_interval_s: float = 0.0, kept: KeptKv | None = None,
        spec: SpecStepper | None = None, paged: PagedKv | None = None,
    ) -> None:
        super().__init__(name, clock, store, control_delay_s)
        self.model, self.hw, self.chips = model, hw, chips
        self.policy = policy
        self.kv_capacity_bytes = kv_capacity_bytes
        self.reporter = LoadReporter(clock, report_interval_s, self._load,
                                     self.gate_release)
        self.pending: list[PendingDecode] = []
        self.running: dict[int, Running] = {}
        self._left = 0  # decode tokens still to generate, summed over the running batch
        self._context = 0  # tokens in the KV cache, summed over the running batch
        self.kv_used_bytes = 0.0
        self.t = 0.0  # the iteration boundary the state is committed at
        self._unseen: list[float] = []  # ready times of pending requests not yet offered to admit
        self._load_hist = BoundaryLoad()  # past boundaries and their batches, for late joins
        self.wake = Wake()
        self._init_timers()
        self.log = UnitLog()
        self.itl = QuantileSketch()  # decode step durations (emu s), weighted by batch size
        self.tokens_out = 0
        self.busy_s = 0.0  # emu s with a non-empty running batch, up to the committed boundary
        self.live_feed: list[tuple[Any, ...]] | None = None  # last tokens, for the live view
        self.token_feed: TokenFeed | None = None  # disagg serve: token times for the gateway
        self.kept = kept  # prompt blocks of finished requests, kept for the next turn
        self.speed = SpeedSchedule()  # an injected straggler's slow-down over emu time
        self.spec = spec  # speculative decoding's per-request draws (None: plain decoding)
        self._spec_plan: SpecPlan | None = None
        self.paged = paged  # paged KV blocks (None: prompt + output reserved on admission)
        self._preempted: dict[int, tuple[int, int]] = {}
        self._stall_s = 0.0
        self.cancels: dict[int, tuple[str, float]] = {}  # disagg serve: reason, emu s
        self.handlers = {KvDelivered: self._on_delivered, KvPrefetch: self._on_prefetch,
                         SpeedChanged: self._on_speed, RequestCancelled: self._on_cancelled}

    # -- messages -------------------------------------------------------------------------
    def _on_speed(self, msg: SpeedChanged) -> None:
        """An injected straggler: iterations from the first boundary at or after ``sent_s`` take
        ``factor`` x longer (a running plan is cut there)."""
        self.speed.change(msg.sent_s, msg.factor)
        self._poke()

    def _take(self, msg: KvDelivered, payload: Any) -> None:
        """Verify the payload and queue the request for admission from its modeled arrival."""
        rid = msg.request.request_id
        ready_s = msg.sent_s + self.control_delay_s
        if rid in self.cancels:
            self._end(msg.request, "cancelled", self.cancels.pop(rid)[0], ready_s)
            return
        try:
            verify_payload(payload, rid)
        except PayloadError as e:
            self._end(msg.request, "failed", e.reason, ready_s)
            return
        except Exception as e:  # noqa: BLE001 - a payload that is no KV batch at all
            self._end(msg.request, "failed", f"kv_missing: {type(e).__name__}", ready_s)
            return
        rec = self._draft(rid)
        if rec.real_end_s is None:
            rec.real_end_s = self.clock.now()
        rec.real_bytes = payload.real_bytes if isinstance(payload, KvMarker) else \
            payload.get_total_buffer_size()  # = nbytes (unsliced), 30 x cheaper
        if self.kept is not None:
            self.kept.reuse(msg.request.prefix_hashes, msg.reused_blocks)
        need = self._kv_need(msg.request)
        if self._kv_never_fits(msg.request):
            self._end(msg.request, "failed", "kv_exceeds_decode_capacity", ready_s)
            return
        self.note_input(ready_s)
        rec.late = self.gate.is_late(ready_s, self.t)  # it came after the unit committed past it
        bisect.insort(self.pending, PendingDecode(msg.request, need, ready_s), key=_ready_at)
        self._unseen.append(ready_s)
        self.log.state(ready_s, len(self.pending), len(self.running), self.kv_used_bytes)
        self._poke()

    # -- the iteration loop ---------------------------------------------------------------
    async def run(self) -> None:
        while True:
            resume = self._until_wait()  # the unit's work up to its next wait
            if resume is None:  # the batch runs on loop timers until it empties
                resume = await self._stepping()
            # until emu time ``resume`` (INF: an input) or an input; its wake was cleared
            if resume == INF:
                await self.wake.wait()
            elif not await self.clock.wait_until(self.gate.release_s(resume), self.wake):
                self.t = resume  # a hold, or a wait for the next ready request, that ran out

    def _admit(self) -> None:
        """Admit the ready pending requests the policy chooses at the committed boundary."""
        ready_by = self.t + TIME_EPS_S
        if self._unseen:
            self._unseen = [r for r in self._unseen if r > ready_by]
        pending = self.pending
        if not pending:
            return
        eligible = tuple(p for p in pending if p.ready_s <= ready_by)
        if not eligible:
            return
        running = self.running
        state = DecodeState(self.t, len(running), self.kv_used_bytes, self._admit_capacity(),
                            self._context, min(map(_tpot_target, running.values()), default=INF))
        admitted = set(self.policy.admit(eligible, state))
        if not admitted:
            return
        self.decide_at(self.t)
        joining = [p for p in eligible if p.request.request_id in admitted]
        after = sum(map(_kv_bytes_of, joining))  # KV of the admitted still to join
        for p in joining:
            after -= p.kv_bytes
            self._join(p, after)
        if self.kv_used_bytes > self.kv_capacity_bytes * (1 + 1e-9):
            raise CapacityExceeded(f"{self.name}: admission exceeded KV capacity")
        # all pending joined (the usual lone arrival): nothing left to filter
        self.pending = [] if len(joining) == len(pending) else \
            [p for p in pending if p.request.request_id not in admitted]
        if self.kept is not None:
            self.kept.fit(self.kv_capacity_bytes - self.kv_used_bytes)
        self._changed()

    def _join(self, p: PendingDecode, after_bytes: float) -> None:
        """An admitted request joins the running batch at the committed boundary (a late KV: at
        the past boundary the gate names, credited the tokens since, if their KV fits beside
        ``after_bytes`` of the requests that join after it; it may have finished)."""
        r = p.request
        run, resumed = self._joining(r, p.kv_bytes)
        self.kv_used_bytes += p.kv_bytes
        rec = self._draft(r.request_id)
        if not resumed:
            rec.decode_start_s = self.t
        at = self._late_join_at(p, rec, run, after_bytes)
        if at is not None:
            rec.decode_start_s = float(self._load_hist.bounds()[at])
        if self.token_feed is not None and not resumed:
            self._feed_join(r, rec)
        if at is None:
            if self.gate.corrections:  # the history is read only to correct a late KV
                self._load_hist.joined(self.t, p.kv_bytes)
        else:
            self._credit_late(run, rec, at)
        if run.left > 0:
            self.running[r.request_id] = run
            self._left += run.left
            self._context += run.context

    def _advance(self, steps: int, edges: np.ndarray) -> None:
        """Commit ``steps`` iterations of the running batch planned from ``edges[0]`` (the
        committed boundary) to ``edges[steps]``."""
        start = self.t
        t = self.t = edges.item(steps)  # (item: a Python float without a numpy scalar)
        self.act_at(t)
        b = len(self.running)
        done = edges[1: steps + 1]
        durations = done - edges[:steps]  # np.diff of (start, *done)
        kv_before = self.kv_used_bytes
        finished, joined, tokens = self._step_batch(steps, edges.item(1))
        # a request's first decode token's gap is measured from its first token (summary.py)
        self.itl.add_run(durations, b - joined, b)
        self.log.work(start, t, tokens, b)
        self.tokens_out += tokens
        self.busy_s += t - start
        for rid in finished:
            r = self.running.pop(rid)
            self._left -= r.left
            self._context -= r.context
            self._release(r)
            if self.spec is not None:
                self.spec.forget(r.request)
            self.records[rid].last_token_s = t
            if self.live_feed is not None:
                self.live_feed.append(("last", rid, t, r.request.output_tokens,
                                       r.request.tpot_slo_s))
            self._end(r.request, "completed", "", t)
        if self.cancels:  # (disagg serve only: no call otherwise)
            self._drop_cancelled()
        if self.gate.corrections:  # late joins (ray engine) read it; the virtual engine has none
            self._load_hist.extend(done, (b, len(self.running)),  # finished left at the last
                                   (kv_before, self.kv_used_bytes))
        self._changed(hold=True)  # reported with the admissions at this boundary, if any

    def results(self) -> dict[str, Any]:
        out = super().results()
        out.update(
            log=self.log.as_dict(), tokens_out=self.tokens_out, itl=self.itl.state(),
        )
        if self.kept is not None:
            out["prefix_cache"] = self.kept.results()
        return out

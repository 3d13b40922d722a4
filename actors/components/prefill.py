"""A prefill unit: one Trainium chip group (or GPU server) running batched prefills.

Batches start at the modeled time they could start — the later of the unit's free time and the
head request's modeled arrival — and last ``prefill_time`` of the batch; the unit then sleeps
until the batch's end, so wake-up jitter is absorbed rather than accumulated (docs/design.md, timing rule 1).

Each request's ``PrefillRecord`` goes on with its KV hand-over (``prefill_handover.py``).

With a prefix cache (``[prefix_cache] enabled``) the unit looks each request's leading prompt
blocks up when its batch starts, is charged only for the uncached tokens, then holds the batch's
blocks; its load reports carry the held block ids (what a cache-aware router scores against).

A request whose modeled arrival precedes the start of the batch now running (lag on the ray
engine) may re-form that batch: the unit decides again as it would have on time
(``prefill_reform.py``).
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

from disagg.actors.components.prefill_handover import KvHandover
from disagg.actors.components.prefill_queue import queued_at, take
from disagg.actors.components.prefill_reform import BatchReforms, BatchStart
from disagg.actors.components.reporting import LoadReporter
from disagg.actors.components.speed import SpeedSchedule
from disagg.actors.components.store import ObjectStore
from disagg.actors.components.token_feed import TokenFeed
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.component import SERIES_MARGIN_S, Clock, Component
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import (
    LoadReport, PrefillAssigned, Request, RequestCancelled, SpeedChanged,
)
from disagg.cluster.prefix_cache import PrefixCache, cached_prefix_tokens
from disagg.cluster.records import PrefillRecord
from disagg.cluster.wake import Wake
from disagg.policies.base import Batch, PrefillBatchingPolicy, QueuedPrefill


class PrefillUnit(KvHandover, BatchReforms, Component):
    """Queues assigned requests, runs batches chosen by its batching policy, emits first tokens.
    It forms the batch at modeled ``t`` at its gate's release time for ``t``."""

    def __init__(
        self, name: str, clock: Clock, model: ModelSpec, hw: HardwareProfile, chips: int,
        policy: PrefillBatchingPolicy, store: ObjectStore, payload_scale: float,
        seed: int = 0, control_delay_s: float = 0.0,
        report_interval_s: float = 0.0, layer_wise: bool = False,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        super().__init__(name, clock)
        self.model, self.hw, self.chips = model, hw, chips
        self.policy = policy
        self.store = store
        self.payload_scale = payload_scale
        self.seed = seed
        self.speed = SpeedSchedule()  # an injected straggler's slow-down over emu time
        self.control_delay_s = control_delay_s
        self.layer_wise = layer_wise  # hand KV over at batch start (fabric streams it per layer)
        self.queue: list[QueuedPrefill] = []
        self.queued_tokens = 0  # prompt tokens in the queue, kept as it changes (load reports)
        self.free_at_s = 0.0
        self.eval_s = 0.0  # earliest modeled time of the next batching decision
        self.running: tuple[Request, ...] = ()
        self.wake = Wake()
        self.log = UnitLog()
        self._carried: dict[int, tuple[Any, ...]] = {}  # queued or running: records so far
        self._started: dict[int, PrefillRecord] = {}  # running: this unit's record
        self.batches = 0
        self.reporter = LoadReporter(clock, report_interval_s, self._load,
                                     self.gate_release)
        self.tokens_in = 0  # prompt tokens of finished batches
        self.busy_s = 0.0  # emu s spent on finished batches
        self.batch_start_s = 0.0
        self._start: BatchStart | None = None  # the running batch, while it may be re-formed
        self._reform: asyncio.Future[bool] | None = None  # resolved True to re-form it
        self.live_feed: list[tuple[Any, ...]] | None = None  # first tokens, for the live view
        self.cache = prefix_cache
        self.cached_tokens = 0  # prompt tokens served from the prefix cache
        self.token_feed: TokenFeed | None = None  # disagg serve: first tokens for the gateway
        self.cancels: dict[int, str] = {}  # disagg serve: requests whose client went away
        self.handlers = {PrefillAssigned: self._on_assigned, SpeedChanged: self._on_speed,
                         RequestCancelled: self._on_cancelled}

    def _on_speed(self, msg: SpeedChanged) -> None:
        """An injected straggler: batches that start from ``sent_s`` on take ``factor`` x longer."""
        self.speed.change(msg.sent_s, msg.factor)

    def _on_assigned(self, msg: PrefillAssigned) -> None:
        queued_s = msg.sent_s + self.control_delay_s
        self._carried[msg.request.request_id] = msg.records
        if msg.request.request_id in self.cancels:
            self._cancel(msg.request, self.cancels[msg.request.request_id], queued_s, ())
            return
        # in queued order, after equal times (as a stable sort would): O(log n) comparisons,
        # so a queue of a million closed-loop users does not cost a sort per assignment; none
        # for the usual newest request (it goes last)
        queued = QueuedPrefill(msg.request, queued_s)
        if not self.queue or self.queue[-1].queued_s <= queued_s:
            self.queue.append(queued)
        else:
            bisect.insort_right(self.queue, queued, key=queued_at)
        self.queued_tokens += msg.request.prompt_tokens
        revisable = self._reform is not None and not self._reform.done()
        if self._start is not None and self.gate.may_reform(queued_s, self.batch_start_s,
                                                            revisable):
            self._undo_start(self._start)
        self.note_input(queued_s)  # late only if before a decision that stands
        self.log.state(queued_s, len(self.queue), len(self.running), 0.0)
        self.wake.set()

    async def run(self) -> None:
        while True:
            if not self.queue:
                self.reporter.flush()
                self.wake.clear()
                await self.wake.wait()
                continue
            t = max(self.free_at_s, self.queue[0].queued_s, self.eval_s)
            if self.reporter.held_s != t:  # the next batch starts later: report the end now
                self.reporter.flush()
            if await self.hold_until(t, self.wake):
                continue  # a request came during the hold: form the batch again
            # in queued order: eligible up to the first queued after t (all of a saturated
            # unit's queue: then no search and no slice copied)
            queue = self.queue
            if queue and queue[-1].queued_s <= t:
                eligible = tuple(queue)
            else:
                eligible = tuple(queue[:bisect.bisect_right(queue, t, key=queued_at)])
            decision = self.policy.form_batch(eligible, t)
            if not isinstance(decision, Batch):
                if decision.time_s <= t:
                    raise ValueError(f"{self.name}: batching policy waits until {decision.time_s}"
                                     f" which is not after {t}")
                self.reporter.flush()
                self.wake.clear()
                woke = await self.clock.wait_until(decision.time_s, self.wake)
                # decide again when the newest request arrived, or when the wait ran out
                self.eval_s = max(t, self.queue[-1].queued_s) if woke else decision.time_s
                continue
            await self._run_batch(decision, t)

    async def _run_batch(self, batch: Batch, t: float) -> None:
        """Start the policy's batch at ``t`` (emu s) and sleep to its modeled end, unless a late
        request re-forms it meanwhile."""
        chosen = set(batch.request_ids)
        if not chosen:
            raise ValueError(f"{self.name}: batching policy returned an empty batch")
        requests, rest = take(self.queue, chosen)
        if len(requests) != len(chosen):
            raise ValueError(f"{self.name}: batch names requests that are not queued")
        streamed = {r.request_id for r in requests if self.layer_wise and r.output_tokens > 1}
        revisable = not streamed and self.token_feed is None and self.cache is None
        before = BatchStart(tuple(self.queue), self.free_at_s, self.last_decision_s,
                             self.batch_start_s, requests) if revisable else None
        self.queue = rest
        prompts = [r.prompt_tokens for r in requests]  # built once: summed and modeled
        tokens = sum(prompts)
        self.queued_tokens -= tokens
        self.decide_at(t)
        cached = self._lookup(requests)
        duration = prefill_time(prompts, self.model, self.hw, self.chips, cached)
        end = t + duration.seconds * self.speed.factor_at(t)
        self.running = requests
        self.batches += 1
        self.log.state(t, len(self.queue), len(requests), 0.0)
        self.log.work(t, end, tokens, len(requests))
        self.free_at_s = end
        self.batch_start_s = t
        self._report(t)
        self._record_start(requests, t, end, cached)
        if self.token_feed is not None:
            self.token_feed.first_tokens(self.peers, self.name, requests, t, end, cached)
        for r in requests:
            if r.request_id in streamed:
                self._finish(r, stream=True)
        if not await self._sleep_unless_reformed(end, before):
            self._end_batch(requests, t, end, tokens, streamed)

    def _end_batch(self, requests: tuple[Request, ...], t: float, end: float, tokens: int,
                   streamed: set[int]) -> None:
        """The batch that started at ``t`` ended at ``end`` (emu s): the unit is free, each
        request's KV is handed over (``streamed`` ones' went at the start)."""
        self.act_at(end, max(0.0, self.gate.release_s(t) - end))  # the end's timer is not held
        self.running = ()
        self.tokens_in += tokens
        self.busy_s += end - t
        self.log.state(end, len(self.queue), 0, 0.0)
        for r in requests:
            if self.live_feed is not None:
                self.live_feed.append(("first", r.request_id, r.arrival_s, end, r.ttft_slo_s,
                                       r.output_tokens))
            if r.request_id not in streamed:
                self._finish(r)
        # held: a batch that starts at the same instant reports both (one LoadReport)
        self.reporter.router = self.peers["router"]
        self.reporter.hold(end)

    def _lookup(self, requests: tuple[Request, ...]) -> list[int] | None:
        """Cached prompt tokens per request (None without a cache); the batch's blocks are then
        held, so a later request can reuse them (requests of one batch do not share)."""
        if self.cache is None:
            return None
        cache = self.cache
        hits = [cache.lookup(r.prefix_hashes) for r in requests]
        for r in requests:
            cache.insert(r.prefix_hashes)
        cached = [cached_prefix_tokens(r.prompt_tokens, n)
                  for r, n in zip(requests, hits, strict=True)]
        self.cached_tokens += sum(cached)
        return cached

    def drain_series(self) -> list[dict[str, Any]]:
        """Final bins of the unit's history (nothing it does can start before now)."""
        series = self.log.pop_final(self.clock.now() - SERIES_MARGIN_S)
        return [] if series is None else [{"entity": self.name, **self._identity(), **series}]

    def _report(self, t: float) -> None:
        self.reporter.router = self.peers["router"]
        self.reporter.changed(t)

    def _load(self, t: float) -> LoadReport:
        return LoadReport(
            self.name, "prefill", len(self.queue), self.queued_tokens,
            len(self.running), 0.0, float("inf"), self.free_at_s, sent_s=t,
            running_tokens=sum(r.prompt_tokens for r in self.running),
            cached_blocks=self.cache.changes() if self.cache is not None else frozenset(),
        )

    def results(self) -> dict[str, Any]:
        out = super().results()
        out.update(log=self.log.as_dict(), batches=self.batches)
        if self.cache is not None:
            out["prefix_cache"] = {**vars(self.cache.stats()), "cached_tokens": self.cached_tokens}
        return out

    def snapshot(self) -> dict[str, Any]:
        """Queue depth, tokens in the running batch, and cumulative tokens and busy emu s."""
        now = min(self.clock.now(), self.free_at_s)
        running_s = now - self.batch_start_s if self.running else 0.0
        out = {
            "name": self.name, **self._identity(), "queue": len(self.queue),
            "running": len(self.running),
            "batch_tokens": sum(r.prompt_tokens for r in self.running), "batches": self.batches,
            "tokens_done": self.tokens_in, "busy_s": self.busy_s + max(0.0, running_s),
        }
        if self.cache is not None:
            stats = self.cache.stats()
            out.update(prefix_hit_rate=stats.hit_rate, prefix_hit_blocks=stats.hit_blocks,
                       prefix_lookup_blocks=stats.lookup_blocks)
        return out

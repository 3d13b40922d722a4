"""Paged KV on a decode unit: admission by blocks, growth as tokens are generated, preemption
when a step cannot grow, and resumption (``cluster/paged_kv.py`` holds the arithmetic); and the
release of a finished request's KV, paged or reserved (with ``decode_keep``, its prompt blocks
stay in free KV memory, ``kept_kv.py``).

Victim order: vLLM v1's FCFS scheduler (``vllm/v1/core/sched/scheduler.py``, ``schedule()``:
when ``kv_cache_manager.allocate_slots`` fails, ``preempted_req = self.running.pop()``, its
blocks freed, ``num_computed_tokens = 0`` and ``self.waiting.prepend_request(preempted_req)``):
the latest-admitted running request is preempted first and goes back to the front of the
waiting queue. Recompute (the default): when it resumes, the unit first re-prefills its context
(prompt + tokens generated so far) on its own hardware — ``prefill.prefill_time`` of those contexts,
a stall of the next step for the whole batch (a decode unit runs no chunked prefill); the token
that prefill would yield is not credited (the next step makes it). Swap: its KV goes to host
memory and back over the host link, ``kv bytes / swap_bytes_per_s`` each way, each a stall of the
next step. Mixed into :class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disagg.actors.components.decode_late import Running
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.kept_kv import KeptKv
from disagg.actors.components.spec_steps import SpecStepper
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import Request
from disagg.cluster.paged_kv import PagedKv
from disagg.policies.base import PendingDecode


class PagedDecode:
    """The decode unit's KV accounting: reserved up front (``paged`` None) or paged."""

    model: ModelSpec
    hw: HardwareProfile
    chips: int
    t: float
    kv_capacity_bytes: float
    kv_used_bytes: float
    running: dict[int, Running]
    pending: list[PendingDecode]
    _left: int
    _context: int
    paged: PagedKv | None
    kept: KeptKv | None
    spec: SpecStepper | None
    _preempted: dict[int, tuple[int, int]]  # request id -> (tokens left, context) at preemption
    _stall_s: float  # emu s the next step waits first (recompute or swap of preempted requests)
    log: Any
    _draft: Callable[[int], RequestDraft]  # the unit's (annotation only: no stub overrides it)

    def _kv_need(self, r: Request) -> float:
        """KV bytes a request takes when admitted: all of prompt + output (reserve), or the
        blocks of its context (paged)."""
        if self.paged is None:
            return float(kv_bytes(r.prompt_tokens + r.output_tokens, self.model))
        left, context = self._preempted.get(r.request_id, (0, r.prompt_tokens + 1))
        return self.paged.bytes_for(context)

    def _kv_never_fits(self, r: Request) -> bool:
        """Whether the request alone could never finish on this unit."""
        if self.paged is None:
            return self._kv_need(r) > self.kv_capacity_bytes
        # above the watermark: an empty unit always admits what it accepted, even resumed
        whole = self.paged.bytes_for(r.prompt_tokens + r.output_tokens)
        return whole > self.paged.admit_capacity_bytes

    def _admit_capacity(self) -> float:
        """The KV bytes the admission policy may fill: all (reserve); paged, all blocks but the
        watermark's and those the running batch's next step grows into (so a request admitted
        now is not preempted by that step)."""
        paged = self.paged
        if paged is None:
            return self.kv_capacity_bytes
        ahead = 1 if self.spec is None else self.spec.spec.gamma + 1
        # PagedKv.blocks inlined (ceil by floor division): per running request per admission
        block_tokens, growth = paged.block_tokens, 0
        for r in self.running.values():
            growth += -(-(r.context + min(ahead, r.left)) // block_tokens) \
                + (-r.context // block_tokens)  # blocks(context + ahead) - blocks(context)
        return paged.admit_capacity_bytes - growth * paged.block_bytes

    def _joining(self, r: Request, kv: float) -> tuple[Running, bool]:
        """The running state of an admitted request, and whether it resumes after preemption
        (then the next step first waits for its recompute or swap-in)."""
        saved = self._preempted.pop(r.request_id, None)
        if saved is None:
            return Running(r, r.output_tokens - 1, r.prompt_tokens + 1, kv), False
        assert self.paged is not None
        left, context = saved
        if self.paged.preemption == "swap":
            self._stall_s += kv / self.paged.swap_bytes_per_s
        else:
            self._stall_s += prefill_time([context], self.model, self.hw, self.chips).seconds
        return Running(r, left, context, kv), True

    def _release(self, run: Running) -> None:
        """A request finished: free its KV (keeping its prompt blocks, with decode_keep)."""
        self.kv_used_bytes -= run.kv_bytes
        if self.kept is not None:
            self.kept.keep(run.request.prefix_hashes, self.kv_capacity_bytes - self.kv_used_bytes)

    def _grow(self, run: Running) -> None:
        """A running request's blocks after it generated tokens (paged)."""
        if self.paged is not None:
            new = self.paged.bytes_for(run.context)
            self.kv_used_bytes += new - run.kv_bytes
            run.kv_bytes = new

    def _preempt_latest(self) -> None:
        """Preempt the latest-admitted running request (vLLM v1 FCFS): free its blocks and put it
        at the front of the pending queue, ready now."""
        assert self.paged is not None and self.running
        rid = next(reversed(self.running))
        run = self.running.pop(rid)
        self._left -= run.left
        self._context -= run.context
        self.kv_used_bytes -= run.kv_bytes
        rec = self._draft(rid)
        rec.preemptions += 1
        rec.late = False  # it queued again: never back-dated
        self._preempted[rid] = (run.left, run.context)
        if self.paged.preemption == "swap":
            self._stall_s += run.kv_bytes / self.paged.swap_bytes_per_s
        self.pending.insert(0, PendingDecode(run.request, run.kv_bytes, self.t))
        self.log.state(self.t, len(self.pending), len(self.running), self.kv_used_bytes)

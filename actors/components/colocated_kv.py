"""KV memory of a colocated unit: reserved up front (``reserve``: prompt + output tokens when
its prefill starts) or paged (``cluster/paged_kv.py``): a request's prompt blocks are allocated
when its prefill starts (a new prompt starts only while the blocks above the watermark hold it),
its blocks grow with every decoded token, and before an iteration whose decodes cannot grow the
unit preempts the latest-started request (vLLM v1 FCFS, ``self.running.pop()``; see
``paged_kv.py``) until they can. A preempted request goes back to the front of the waiting queue
and, when it starts again, re-prefills its context (prompt + tokens generated so far) in chunks
like any prompt (recompute), then decodes on from where it was. Mixed into
:class:`~disagg.actors.components.colocated.ColocatedUnit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from disagg.actors.components.draft import RequestDraft
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.messages import Request
from disagg.cluster.paged_kv import PagedKv


@dataclass
class Prefilling:
    """A request waiting for or in its (chunked) prefill on a colocated unit."""

    request: Request
    queued_s: float
    done: int = 0  # tokens already prefilled
    started: bool = False
    resume: tuple[int, int] | None = None  # preempted: (decode tokens left, context) to go back to

    @property
    def tokens(self) -> int:
        """Tokens to prefill: the prompt, or a preempted request's whole context (recompute)."""
        return self.request.prompt_tokens if self.resume is None else self.resume[1]


@dataclass
class Decoding:
    """A decoding request on a colocated unit."""

    request: Request
    left: int  # decode tokens still to generate
    context: int  # tokens in the KV cache now
    since_s: float = 0.0  # (re)joined the decodes at this iteration boundary (emu s)


class ColocatedKv:
    """The colocated unit's KV accounting: reserved (``paged`` None) or paged."""

    model: ModelSpec
    t: float
    kv_capacity_bytes: float
    kv: dict[int, float]  # KV bytes per started request, in start order
    waiting: list[Prefilling]
    decoding: dict[int, Decoding]
    paged: PagedKv | None
    spec: Any
    log: Any
    _draft: Callable[[int], RequestDraft]  # the unit's (annotation only)

    @property
    def kv_used_bytes(self) -> float:
        """KV bytes held by the started requests."""
        return sum(self.kv.values())

    def _kv_never_fits(self, r: Request) -> bool:
        """Whether the request alone could never finish on this unit."""
        need = float(kv_bytes(r.prompt_tokens + r.output_tokens, self.model))
        if self.paged is None:
            return need > self.kv_capacity_bytes
        # above the watermark: an empty unit always admits what it accepted, even resumed
        whole = self.paged.bytes_for(r.prompt_tokens + r.output_tokens)
        return whole > self.paged.admit_capacity_bytes

    def _kv_at_start(self, w: Prefilling) -> float:
        """KV bytes a request takes when its prefill starts."""
        if self.paged is None:
            return float(kv_bytes(w.request.prompt_tokens + w.request.output_tokens, self.model))
        return self.paged.bytes_for(w.tokens)

    def _kv_free(self) -> float:
        """KV bytes new prefills may take now (paged: above the watermark, after the decodes'
        next tokens)."""
        used = sum(self.kv.values())
        if self.paged is None:
            return self.kv_capacity_bytes - used
        growth = self._growth_blocks(self._ahead()) * self.paged.block_bytes
        return self.paged.admit_capacity_bytes - used - growth

    def _growth_blocks(self, tokens: int) -> int:
        """Blocks the decodes need more to gain ``tokens`` tokens each (at most what each has
        left; paged)."""
        assert self.paged is not None
        return sum(self.paged.blocks(d.context + min(tokens, d.left)) - self.paged.blocks(d.context)
                   for d in self.decoding.values())

    def _ahead(self) -> int:
        """Tokens a decode may gain in one step: 1, or gamma + 1 with speculation."""
        return 1 if self.spec is None else self.spec.spec.gamma + 1

    def _grow(self, d: Decoding) -> None:
        """A decode's blocks after it generated tokens (paged)."""
        if self.paged is not None:
            self.kv[d.request.request_id] = self.paged.bytes_for(d.context)

    def _make_room(self) -> None:
        """Preempt the latest-started requests until the decodes' next step fits (paged; with
        speculation, room for gamma + 1 tokens each)."""
        if self.paged is None:
            return
        ahead = self._ahead()
        while self.decoding and (self.paged.blocks_of(self.kv) + self._growth_blocks(ahead)
                                 > self.paged.capacity_blocks):
            self._preempt(next(reversed(self.kv)))

    def _decode_fit(self, gained: np.ndarray) -> int:
        """How many planned decode-only steps fit (all, unless paged)."""
        if self.paged is None:
            return len(gained)
        decs = list(self.decoding.values())
        other = self.paged.blocks_of(self.kv) - sum(self.paged.blocks(d.context) for d in decs)
        return self.paged.steps_that_fit(np.array([d.context for d in decs]), gained, other)

    def _preempt(self, rid: int) -> None:
        """Free request ``rid``'s blocks and put it at the front of the waiting queue."""
        self.kv.pop(rid)
        rec = self._draft(rid)
        rec.preemptions += 1
        d = self.decoding.pop(rid, None)
        if d is not None:
            w = Prefilling(d.request, self.t, resume=(d.left, d.context))
        else:
            w = next(x for x in self.waiting if x.request.request_id == rid)
            self.waiting.remove(w)
            w = Prefilling(w.request, self.t, resume=w.resume)
        self.waiting.insert(0, w)
        self.waiting.sort(key=waiting_order)
        self.log.state(self.t, len(self.waiting), len(self.decoding), sum(self.kv.values()))


def waiting_order(w: Prefilling) -> tuple[bool, bool, float]:
    """Waiting order: started prefills, then preempted requests, then the rest by arrival."""
    return (not w.started, w.resume is None, w.queued_s)


"""What policies see and what they decide: frozen views in, plain-data decisions out.

A router policy sees a :class:`RouterView` (load reports from units, possibly stale) and returns a
:class:`Route`, a :class:`Reject` or (for decode placement) :class:`Wait`. A prefill batching
policy sees the unit's queue and returns a :class:`Batch` or :class:`WaitUntil`. A decode
admission policy sees pending requests and the running batch and returns the ids to admit.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from disagg.cluster.frozen import frozen
from disagg.cluster.hardware.specs import HardwareProfile, ModelSpec
from disagg.cluster.messages import Request, UnitKind


@frozen
class UnitView:
    """A unit as the router last heard of it."""

    name: str
    kind: UnitKind
    queued_requests: int = 0  # requests waiting (prefill queue, or decode pending admission)
    queued_tokens: int = 0  # prompt tokens waiting (prefill) or tokens left to decode (decode)
    running_requests: int = 0  # prefill: in the current batch; decode: in the running batch
    running_tokens: int = 0  # prefill: prompt tokens of the batch in progress; decode: context
    kv_used_bytes: float = 0.0  # decode: KV reserved by running and admitted requests
    kv_capacity_bytes: float = float("inf")  # decode: KV the unit can hold
    free_at_s: float = 0.0  # prefill: modeled end of the batch in progress
    reported_s: float = 0.0  # emu time of the report this view comes from
    up: bool = True
    # prefix-block ids held (prefix caching); the router's copy behind it changes with the
    # unit's next report, which replaces the view: read it within one decision
    cached_blocks: Set[int] = frozenset()

    @property
    def kv_free_bytes(self) -> float:
        return self.kv_capacity_bytes - self.kv_used_bytes

    @property
    def outstanding_tokens(self) -> int:
        """Tokens of work the unit holds: queued plus in progress."""
        return self.queued_tokens + self.running_tokens


@frozen
class RouterView:
    """Everything a router policy may use for one decision."""

    now_s: float
    prefill: tuple[UnitView, ...]
    decode: tuple[UnitView, ...]


@frozen
class Route:
    """Send the request to ``unit``."""

    unit: str


@frozen
class Reject:
    """Refuse the request; ``reason`` ends up in requests.parquet."""

    reason: str


@frozen
class Wait:
    """Decode placement only: no unit can take it now; ask again on the next load report."""

    reason: str = "no_decode_capacity"


@frozen
class QueuedPrefill:
    """A request waiting in a prefill unit's queue since ``queued_s`` (modeled arrival)."""

    request: Request
    queued_s: float


@frozen
class Batch:
    """Run these requests (queue order) as the next prefill batch."""

    request_ids: tuple[int, ...]


@frozen
class WaitUntil:
    """Form no batch yet; decide again at ``time_s`` or when a request arrives."""

    time_s: float


@frozen
class PendingDecode:
    """A request whose KV has arrived at a decode unit, waiting to join the running batch."""

    request: Request
    kv_bytes: float  # KV reserved on admission: prompt + output tokens
    ready_s: float


@frozen
class DecodeState:
    """The running batch at an iteration boundary."""

    now_s: float
    running: int
    kv_used_bytes: float
    kv_capacity_bytes: float
    context_tokens: int = 0
    tightest_tpot_s: float = float("inf")  # the smallest TPOT target among running requests


@dataclass(frozen=True)
class PolicyContext:
    """What a policy factory may read: the model, the pools' hardware and a random stream."""

    model: ModelSpec
    prefill_hw: HardwareProfile
    prefill_chips: int
    decode_hw: HardwareProfile
    decode_chips: int
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


class RouterPolicy(Protocol):
    """Picks a prefill unit on arrival and a decode unit when prefill ends."""

    def choose_prefill(self, request: Request, view: RouterView) -> Route | Reject: ...

    def choose_decode(self, request: Request, view: RouterView) -> Route | Wait | Reject: ...


class PrefillBatchingPolicy(Protocol):
    """Chooses the next prefill batch from a unit's queue (never empty when called)."""

    def form_batch(self, queue: tuple[QueuedPrefill, ...], now_s: float) -> Batch | WaitUntil: ...


class DecodeAdmissionPolicy(Protocol):
    """Chooses which pending requests join the running batch at the next iteration boundary."""

    def admit(self, pending: tuple[PendingDecode, ...], state: DecodeState) -> tuple[int, ...]: ...

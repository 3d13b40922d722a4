"""Requests and the messages components exchange: immutable dataclasses named as nouns.

Every message carries ``sent_s``, the emu time at which its sender acted; the receiver treats
``sent_s`` (plus any modeled control delay) as the message's modeled arrival time. Messages that
carry a request along its path also carry ``records``: the per-request records
(``cluster/records.py``) the components on the way have written, which reach the collector with
the request's ``RequestEnded``.
"""

from __future__ import annotations

from collections.abc import Set
from disagg.cluster.frozen import frozen
from typing import Any, Literal

Status = Literal["completed", "rejected", "failed", "cancelled"]
UnitKind = Literal["prefill", "decode", "colocated"]
PREFIX_BLOCK_TOKENS = 512  # tokens per prefix-hash block (Mooncake's trace release uses 512)


@frozen
class Request:
    """One inference request: what arrives, how long it is, and the SLO it is judged by.

    ``prefix_hashes``: ids of the prompt's consecutive ``PREFIX_BLOCK_TOKENS``-token blocks, in
    order (the last may be partial); two requests whose first k ids agree share the KV of their
    first k blocks. Empty when the workload gives none (no prefix reuse is possible).
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    slo_class: str = "default"
    ttft_slo_s: float = float("inf")
    tpot_slo_s: float = float("inf")
    prefix_hashes: tuple[int, ...] = ()
    attempt: int = 0  # raised by the router each time the request is redone (cluster/records.py)


@frozen
class RequestArrived:
    """Load generator (or gateway) -> router: a request has arrived. Under ``disagg serve
    --per-unit`` the unit the client chose is pinned: ``prefill_unit`` (a prefill or colocated
    unit) and ``decode_unit`` bypass the router's policy; ``decode_leg`` (vLLM's P/D
    ``do_remote_decode``): its KV waits at the router for a :class:`DecodeLeg`."""

    request: Request
    sent_s: float
    prefill_unit: str = ""
    decode_unit: str = ""
    decode_leg: bool = False


@frozen
class DecodeLeg:
    """Gateway -> router (``disagg serve --per-unit``): the decode leg of a P/D request reached
    ``decode_unit``, asking for ``output_tokens`` in all; its KV moves there over the fabric."""

    request_id: int
    decode_unit: str
    output_tokens: int
    sent_s: float


@frozen
class PrefillAssigned:
    """Router -> prefill unit: run this request's prefill."""

    request: Request
    sent_s: float
    records: tuple[Any, ...] = ()


@frozen
class KvReady:
    """Prefill unit -> router: prefill done, first token out, KV payload in the store.

    With layer-wise streaming the unit sends it when the prefill *starts* (``sent_s``), and
    ``layers_ready_s`` = (prefill start, prefill end): layer i of n is ready at
    start + (i + 1) / n x (end - start).
    """

    request: Request
    prefill_unit: str
    kv_bytes: float
    payload: Any  # an object-store reference (ray engine) or the payload itself (virtual)
    sent_s: float
    layers_ready_s: tuple[float, float] | None = None
    records: tuple[Any, ...] = ()


@frozen
class TransferRequested:
    """Router -> fabric: move this request's KV from a prefill unit to a decode unit.

    ``layers_ready_s`` (layer-wise streaming only): see :class:`KvReady`. ``reused_blocks``
    (``[prefix_cache] transfer = "missing"``): leading prompt blocks the router expects the
    decode unit to hold already, left out of ``kv_bytes``.
    """

    request: Request
    src_unit: str
    dst_unit: str
    kv_bytes: float
    payload: Any
    sent_s: float
    layers_ready_s: tuple[float, float] | None = None
    reused_blocks: int = 0
    records: tuple[Any, ...] = ()


@frozen
class KvDelivered:
    """Fabric -> decode unit: the KV has arrived (at ``sent_s``, the modeled transfer end);
    ``reused_blocks`` as in :class:`TransferRequested`."""

    request: Request
    src_unit: str
    kv_bytes: float
    payload: Any
    transfer_start_s: float
    sent_s: float
    reused_blocks: int = 0
    records: tuple[Any, ...] = ()


@frozen
class KvPrefetch:
    """Fabric -> decode unit, at transfer start: begin moving the real bytes now, so the real
    copy overlaps the modeled transfer; the request may join only after ``KvDelivered``."""

    request_id: int
    payload: Any
    sent_s: float


@frozen
class LoadReport:
    """Unit -> router: the unit's load as of ``sent_s`` (what policies see, possibly stale)."""

    unit: str
    kind: UnitKind
    queued_requests: int
    queued_tokens: int
    running_requests: int
    kv_used_bytes: float
    kv_capacity_bytes: float
    free_at_s: float
    sent_s: float
    up: bool = True
    running_tokens: int = 0
    # prefix-block ids the unit's cache holds; from a cache, block_changes.BlockChanges: the
    # changes since its previous report, which the router applies to its copy
    cached_blocks: Set[int] = frozenset()


@frozen
class RequestEnded:
    """Any component -> collector: the request reached its one final status; ``records`` are
    the request's records written on its way (the load generator's ``Request`` first)."""

    request_id: int
    status: Status
    reason: str
    sent_s: float
    records: tuple[Any, ...] = ()


@frozen
class UnitDown:
    """Engine -> router: ``unit`` is lost (its machine went away); ``ended_ids`` are the requests
    the collector had already ended, which need no redo."""

    unit: str
    ended_ids: frozenset[int]
    sent_s: float


@frozen
class RequestsEnded:
    """Engine -> router: these requests have ended (drained from the collector); the router
    stops tracking them for redo."""

    request_ids: tuple[int, ...]
    sent_s: float


@frozen
class RequestRedone:
    """Router -> collector: the request lost its unit and starts again from prefill."""

    request_id: int
    lost_unit: str
    sent_s: float


@frozen
class RequestAmended:
    """Router -> collector: the request as the router passes it on (its prompt cut to fit the
    model's context, ``over_context = "truncate"``); its row's arrival fields come from it."""

    request: Request
    sent_s: float


@frozen
class Arrivals:
    """Load generator -> collector: requests sent to the router since the last batch (so the
    collector can write a row for any that never ends)."""

    requests: tuple[Request, ...]
    sent_s: float


@frozen
class ArrivalsDone:
    """Load generator -> collector: no more arrivals; ``submitted`` requests in all."""

    submitted: int
    sent_s: float


@frozen
class FirstTokenPlanned:
    """Prefill unit -> gateway (``disagg serve`` only), at batch start: the request's prefill runs
    from ``prefill_start_s`` and its first token is out at ``first_token_s`` (emu s)."""

    request_id: int
    prefill_unit: str
    prefill_start_s: float
    first_token_s: float
    sent_s: float
    cached_tokens: int = 0  # prompt tokens its prefix cache served


@frozen
class RequestCancelled:
    """Gateway -> prefill and decode units (``disagg serve`` only): the request's client went
    away; the unit holding it (now or when it comes) ends it ``cancelled`` with ``reason`` and
    frees what it holds, as vLLM aborts a request whose client disconnected."""

    request_id: int
    reason: str
    sent_s: float


@frozen
class UnitUp:
    """Engine -> router: a fresh ``unit`` replaces a lost one (empty queues) from ``sent_s``."""

    unit: str
    sent_s: float


@frozen
class DecodeJoined:
    """Decode unit -> gateway (``disagg serve`` only): the request joined the running batch at
    ``decode_start_s``; its KV (``kv_bytes`` modeled) crossed the fabric from
    ``transfer_start_s`` to ``transfer_end_s`` (emu s)."""

    request_id: int
    decode_unit: str
    kv_bytes: float
    transfer_start_s: float
    transfer_end_s: float
    decode_start_s: float
    sent_s: float


@frozen
class SpeedChanged:
    """Engine -> unit (injected straggler): from ``sent_s`` the unit's modeled batch and
    iteration durations are multiplied by ``factor`` (1 = back to normal)."""

    factor: float
    sent_s: float


@frozen
class TokenSchedule:
    """Decode unit -> gateway (``disagg serve`` only), at the start of a run of iterations: each
    request in ``request_ids`` gets one token at each boundary in ``times_s`` (emu s, ascending),
    up to its remaining tokens. It replaces any token planned after ``sent_s`` (the run's start):
    a run cut short by a join is re-planned by the next schedule."""

    decode_unit: str
    request_ids: tuple[int, ...]
    times_s: tuple[float, ...]
    sent_s: float


@frozen
class LinkScaled:
    """Engine -> fabric (injected link fault): from ``sent_s`` ``link`` (``HOST/egress``,
    ``HOST/ingress`` or ``core``) carries its nominal capacity x ``factor`` (0 = cut)."""

    link: str
    factor: float
    sent_s: float

"""Per-request records, one frozen record type per owning component, and which ``requests.parquet``
columns each sets (the reducer that folds them into a row is ``cluster/rows.py``).

Each column of ``requests.parquet`` is set by exactly one component (:data:`FIELD_OWNERS`):

- the load generator's record is the :class:`~disagg.cluster.messages.Request` itself (arrival,
  lengths, SLO targets);
- the router writes :class:`PrefillRouting` and :class:`DecodeRouting` (which unit, how old its
  view was);
- the prefill unit writes :class:`PrefillRecord` (batch start, first token, modeled KV bytes);
- the fabric writes :class:`TransferRecord` (modeled transfer start and delivery);
- the decode unit writes :class:`DecodeRecord` (admission, tokens, the real payload's arrival);
- the collector writes the end (status, reason, end time) and the attempt count.

Records travel with the request through the messages that carry it (``records`` fields), and the
collector folds the ones that arrive with a ``RequestEnded`` (``cluster/rows.py``). When a request
is redone (its unit was lost), the router raises ``Request.attempt``; for every record owned by a
unit or the router the latest attempt stands, and the collector's first end stands (see
:func:`~disagg.cluster.rows.fold`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import ClassVar

from disagg.cluster.frozen import frozen
from disagg.cluster.messages import Request


@dataclass(frozen=True, slots=True, order=True)
class UnitId:
    """A unit's identity as data: its pool (``prefill``, ``decode`` or ``colocated``) and its
    index in it."""

    kind: str
    index: int
    name: str = field(init=False, repr=False, compare=False)
    """The unit's component name, ``<kind>-<index>`` (set once: every request's row reads it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.kind}-{self.index}")


@frozen
class PrefillRouting:
    """Router: where the request's prefill (attempt ``attempt``) was sent, and how old (emu s) the
    router's view of that unit was when it decided."""

    OWNER: ClassVar[str] = "router"
    request_id: int
    attempt: int
    prefill_unit: UnitId
    prefill_view_age_s: float


@frozen
class DecodeRouting:
    """Router: where the request's decode (attempt ``attempt``) was placed, and its view's age
    (None for a colocated unit, which decodes what it prefilled: no second decision)."""

    OWNER: ClassVar[str] = "router"
    request_id: int
    attempt: int
    decode_unit: UnitId
    decode_view_age_s: float | None


@frozen
class PrefillRecord:
    """Prefill unit: the batch start and end (= first token, emu s), the modeled KV bytes
    (None for one-token outputs, which hand no KV over) and the prompt tokens served from its
    prefix cache (None with caching off)."""

    OWNER: ClassVar[str] = "prefill"
    request_id: int
    attempt: int
    prefill_start_s: float
    first_token_s: float
    kv_bytes: float | None
    cached_tokens: int | None = None


@frozen
class TransferRecord:
    """Fabric: one KV transfer, modeled start and delivery at the decode unit (emu s)."""

    OWNER: ClassVar[str] = "fabric"
    request_id: int
    attempt: int
    src_unit: str
    dst_unit: str
    src_host: str
    dst_host: str
    modeled_bytes: float
    transfer_start_s: float
    transfer_end_s: float


@frozen
class DecodeRecord:
    """Decode unit: admission, first decode token and last token (emu s; None if the request
    failed before), the real payload's size and arrival (emu s on the unit's clock), and how
    many times the unit preempted it (paged KV)."""

    OWNER: ClassVar[str] = "decode"
    request_id: int
    attempt: int
    decode_start_s: float | None
    first_decode_token_s: float | None
    last_token_s: float | None
    real_bytes: int | None
    real_end_s: float | None
    preemptions: int = 0


@frozen
class EndRecord:
    """Collector: the request's one final status, its reason and when it ended (emu s; None for
    a request that never ended), how many attempts it took (1 unless redone) and the lost unit
    it was last redone from (None unless redone)."""

    OWNER: ClassVar[str] = "collector"
    request_id: int
    status: str
    reason: str
    end_s: float | None
    attempts: int
    redone_from: str | None = None


Record = Request | PrefillRouting | DecodeRouting | PrefillRecord | TransferRecord | DecodeRecord
OwnedRecord = (type[PrefillRouting] | type[DecodeRouting] | type[PrefillRecord]
               | type[TransferRecord] | type[DecodeRecord] | type[EndRecord])
UNIT_RECORDS: tuple[OwnedRecord, ...] = (PrefillRouting, DecodeRouting, PrefillRecord,
                                         TransferRecord, DecodeRecord)
OWNED_RECORDS: tuple[OwnedRecord, ...] = (*UNIT_RECORDS, EndRecord)
"""The record types a component owns (each names its owner in ``OWNER``)."""
_ARRIVAL_FIELDS = ("request_id", "slo_class", "arrival_s", "prompt_tokens", "output_tokens",
                   "ttft_slo_s", "tpot_slo_s")
_NOT_COLUMNS = {"request_id", "attempt", "src_unit", "dst_unit", "src_host", "dst_host",
                "modeled_bytes"}


@functools.cache
def record_fields(kind: type) -> tuple[str, ...]:
    """The row fields a record type sets (ids, attempts and transfer-only fields left out)."""
    if kind is Request:
        return _ARRIVAL_FIELDS
    return tuple(f.name for f in dataclasses.fields(kind) if f.name not in _NOT_COLUMNS)


DERIVED = ("ttft_s", "tpot_s", "e2e_s", "slo_met")
"""Row fields computed by :func:`derive` from owned fields, never written by a component."""


def owner_table() -> dict[str, str]:
    """Row field -> the one component kind that writes it (``derived`` for computed fields).
    Raises if two record types claim the same field."""
    out: dict[str, str] = {}
    owners: list[tuple[type, str]] = [(Request, "loadgen")]
    owners += [(k, k.OWNER) for k in OWNED_RECORDS]
    for kind, owner in owners:
        for name in record_fields(kind):
            if name in out:
                raise ValueError(f"row field {name!r} has two owners: {out[name]} and {owner}")
            out[name] = owner
    for name in DERIVED:
        out[name] = "derived"
    return out


FIELD_OWNERS = owner_table()

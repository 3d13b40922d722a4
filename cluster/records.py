"""Per-request records, one frozen record type per owning component, and the one reducer that
folds them into a ``requests.parquet`` row.

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
collector folds the ones that arrive with a ``RequestEnded``. When a request is redone (its unit
was lost), the router raises ``Request.attempt``; for every record owned by a unit or the router
the latest attempt stands, and the collector's first end stands (see :func:`fold`).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.frozen import frozen
from disagg.cluster.messages import Request


@dataclass(frozen=True, slots=True, order=True)
class UnitId:
    """A unit's identity as data: its pool (``prefill``, ``decode`` or ``colocated``) and its
    index in it."""

    kind: str
    index: int

    @property
    def name(self) -> str:
        """The unit's component name, ``<kind>-<index>``."""
        return f"{self.kind}-{self.index}"


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


class DuplicateRecord(RuntimeError):
    """Two records of one owner for the same request attempt: a bug in a component."""


def fold(records: list[Record], end: EndRecord | None) -> dict[str, Any]:
    """One row from a request's records. Precedence: of each unit or router record type the one
    with the highest attempt stands (a second one for the same attempt raises); the arrival is
    the load generator's; ``end`` is the collector's first end."""
    # chosen for speed (the virtual engine folds every request of a trace): the row's values
    # gathered as one tuple and the dict built in one call, the records picked by a plan cached
    # per sequence of record types: ~20 % cheaper than updating the row record by record
    plan = _plan(tuple(map(type, records)))
    if plan is None:  # a record type repeats (a redone request): pick by attempt
        keys, getters, units, picked = _picked(records, end is not None)
    else:
        keys, getters, units, pick = plan
        keys = keys + _END_FIELDS if end is not None else keys
        picked = pick(records)
    values: tuple[Any, ...] = ()
    for get, rec in zip(getters, picked):
        values += get(rec)
    if end is not None:
        values += _END_GET(end)
    row = dict(zip(keys, values))
    for name in units:
        if isinstance(row[name], UnitId):
            row[name] = row[name].name
    derive(row)
    return row


_Getter = Callable[[Any], tuple[Any, ...]]
_Shape = tuple[tuple[str, ...], tuple[_Getter, ...], tuple[str, ...]]


def _picked(records: list[Record], end: bool) -> tuple[tuple[str, ...], tuple[_Getter, ...],
                                                        tuple[str, ...], list[Any]]:
    """The row's shape (:func:`_shape`) and records when a record type repeats: the last
    arrival, and of each other type the record of the highest attempt."""
    arrival: list[Any] = []
    best: dict[type, Any] = {}
    for rec in records:
        kind: type = type(rec)
        if kind is Request:
            arrival = [rec]
            continue
        held = best.get(kind)
        if held is None or rec.attempt > held.attempt:
            best[kind] = rec
        elif held.attempt == rec.attempt:
            raise DuplicateRecord(f"request {rec.request_id}: two {kind.__name__} for attempt "
                                  f"{rec.attempt}")
    kinds = (Request,) * len(arrival) + tuple(best)
    keys, getters, units = _shape(kinds)
    return (keys + _END_FIELDS if end else keys), getters, units, [*arrival, *best.values()]


@functools.lru_cache(maxsize=512)
def _plan(kinds: tuple[type, ...]) -> tuple[tuple[str, ...], tuple[_Getter, ...], tuple[str, ...],
                                            Callable[[list[Any]], Any]] | None:
    """For records of types ``kinds`` (in that order), each type at most once: the row's shape
    (:func:`_shape`) and a picker of the records in the shape's order (the arrival first).
    None when a type repeats."""
    if len(set(kinds)) < len(kinds):
        return None
    order = sorted(range(len(kinds)), key=lambda i: kinds[i] is not Request)
    pick: Callable[[list[Any]], Any] = lambda recs: ()  # noqa: E731
    if order:
        single = operator.itemgetter(*order)
        pick = single if len(order) > 1 else (lambda recs: (single(recs),))
    return (*_shape(tuple(kinds[i] for i in order)), pick)


@functools.cache
def _shape(kinds: tuple[type, ...]) -> _Shape:
    """The row fields set by one record of each of ``kinds`` (in that order), the getters of
    the records' values, and the fields that may hold a :class:`UnitId` (written as its name)."""
    keys = tuple(f for k in kinds for f in record_fields(k))
    units = tuple(f.name for k in kinds if k is not Request for f in dataclasses.fields(k)
                  if "UnitId" in str(f.type) and f.name in record_fields(k))
    return keys, tuple(_getter(k) for k in kinds), units


def _getter(kind: type) -> _Getter:
    """A getter of a record type's row fields' values as a tuple (one C call)."""
    get = operator.attrgetter(*record_fields(kind))
    return get if len(record_fields(kind)) > 1 else (lambda rec: (get(rec),))


_END_GET = _getter(EndRecord)
_END_FIELDS = record_fields(EndRecord)


def derive(row: dict[str, Any]) -> None:
    """Fill the derived fields (ttft, tpot, e2e, slo verdict) of a folded row in place."""
    if "status" not in row:
        row["status"], row["reason"] = "failed", "unfinished_at_drain_deadline"
    if row["status"] == "completed" and row.get("first_token_s") is None:
        row["first_token_s"] = row.get("end_s")  # the prefill record went with a lost unit
    if row["status"] == "completed" and row.get("last_token_s") is None:
        # one-token outputs end at prefill; a lost unit's records are gone but the end time stands
        row["last_token_s"] = row.get("end_s") or row.get("first_token_s")
    if row["status"] != "completed":
        row["slo_met"] = False
        return
    row["ttft_s"] = row["first_token_s"] - row["arrival_s"]
    row["e2e_s"] = row["last_token_s"] - row["arrival_s"]
    decode_tokens = row["output_tokens"] - 1
    row["tpot_s"] = (row["last_token_s"] - row["first_token_s"]) / decode_tokens if decode_tokens else 0.0
    row["slo_met"] = bool(row["ttft_s"] <= row["ttft_slo_s"] + TIME_EPS_S
                          and row["tpot_s"] <= row["tpot_slo_s"] + TIME_EPS_S)


def transfer_rows(records: list[Record]) -> list[dict[str, Any]]:
    """transfers.parquet rows of one request: each transfer joined with the decode record of the
    same attempt (real bytes and real arrival)."""
    decode = {r.attempt: r for r in records if isinstance(r, DecodeRecord)}
    out = []
    for t in records:
        if isinstance(t, TransferRecord):
            d = decode.get(t.attempt)
            out.append({
                "request_id": t.request_id, "src_unit": t.src_unit, "dst_unit": t.dst_unit,
                "src_host": t.src_host, "dst_host": t.dst_host, "modeled_bytes": t.modeled_bytes,
                "start_s": t.transfer_start_s, "modeled_end_s": t.transfer_end_s,
                "real_bytes": None if d is None else d.real_bytes,
                "real_end_s": None if d is None else d.real_end_s, "attempt": t.attempt,
            })
    return out


def with_nodes(rows: list[dict[str, Any]], node_of: dict[str, str]) -> list[dict[str, Any]]:
    """Transfer rows with the Ray nodes of their source and destination units (ray engine)."""
    for t in rows:
        src, dst = node_of.get(t["src_unit"]), node_of.get(t["dst_unit"])
        t.update(src_node=src, dst_node=dst,
                 crosses_nodes=None if src is None or dst is None else src != dst)
    return rows

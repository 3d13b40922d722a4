"""How a request's records become its rows: :func:`fold` (one ``requests.parquet`` row, derived
fields by :func:`derive`), :func:`transfer_rows` (its ``transfers.parquet`` rows) and
:func:`with_nodes` (the ray engine's node columns). The records and the column owners are
``cluster/records.py``."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.messages import Request
from disagg.cluster.records import (
    DecodeRecord,
    EndRecord,
    Record,
    TransferRecord,
    record_fields,
)


class DuplicateRecord(RuntimeError):
    """Two records of one owner for the same request attempt: a bug in a component."""


def fold(records: Sequence[Record], end: EndRecord | None) -> dict[str, Any]:
    """One row from a request's records. Precedence: of each unit or router record type the one
    with the highest attempt stands (a second one for the same attempt raises); the arrival is
    the load generator's; ``end`` is the collector's first end."""
    # chosen for speed (the virtual engine folds every request of a trace): the row built by a
    # function made once per sequence of record types (:func:`_builder`)
    build = _builder(tuple(map(type, records)))
    if build is not None:
        row = build(records, end)
    else:  # a record type repeats (a redone request): pick by attempt
        keys, keys_end, getters, picked = _picked(records)
        values: tuple[Any, ...] = ()
        for get, rec in zip(getters, picked):
            values += get(rec)
        if end is not None:
            values += _END_GET(end)
            keys = keys_end
        row = dict(zip(keys, values))
    derive(row)
    return row


_Getter = Callable[[Any], tuple[Any, ...]]
_Shape = tuple[tuple[str, ...], tuple[str, ...], tuple[_Getter, ...]]
_Builder = Callable[[Sequence[Any], Any], dict[str, Any]]


def _picked(records: Sequence[Record]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[_Getter, ...],
                                            list[Any]]:
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
    return (*_shape(kinds), [*arrival, *best.values()])


@functools.lru_cache(maxsize=512)
def _builder(kinds: tuple[type, ...]) -> _Builder | None:
    """For records of types ``kinds`` (in that order), each type at most once: a function of the
    records and the end (or None) giving the row — the fields of :func:`_shape` for the arrival
    first, then the others in order, then the end's — written out as one dict display, like
    ``{"request_id": r0.request_id, ..., "prefill_unit": r2.prefill_unit.name, ...}``. None
    when a type repeats. (~40 % cheaper than a dict of getters' values: the display builds the
    dict at its size, and reads each field as an attribute, without a getter per record.)"""
    if len(set(kinds)) < len(kinds):
        return None
    order = sorted(range(len(kinds)), key=lambda i: kinds[i] is not Request)
    items = [_item(f"r{i}", kinds[i], f) for i in order for f in record_fields(kinds[i])]
    ends = [_item("end", EndRecord, f) for f in record_fields(EndRecord)]
    unpack = "".join(f"r{i}, " for i in range(len(kinds))) + "= records"
    source = (f"def build(records, end):\n"
              f"    {unpack if kinds else ''}\n"
              f"    if end is None:\n"
              f"        return {{{', '.join(items)}}}\n"
              f"    return {{{', '.join(items + ends)}}}\n")
    scope: dict[str, Any] = {}
    exec(compile(source, f"<row of {', '.join(k.__name__ for k in kinds)}>", "exec"), scope)
    build: _Builder = scope["build"]
    return build


def _item(name: str, kind: type, field: str) -> str:
    """``"field": name.field`` (``name.field.name`` for a :class:`UnitId` field) in Python."""
    assert field.isidentifier() and name.isidentifier()
    return f"{field!r}: {name}.{field}{'.name' if field in _unit_fields(kind) else ''}"


@functools.cache
def _shape(kinds: tuple[type, ...]) -> _Shape:
    """The row fields set by one record of each of ``kinds`` (in that order), the same followed
    by the end's fields, and the getters of the records' values."""
    keys = tuple(f for k in kinds for f in record_fields(k))
    return keys, keys + record_fields(EndRecord), tuple(_getter(k) for k in kinds)


def _getter(kind: type) -> _Getter:
    """A getter of a record type's row fields' values as a tuple (one C call); a field that
    holds a :class:`UnitId` is got as the unit's name."""
    units = _unit_fields(kind)
    get = operator.attrgetter(*(f"{f}.name" if f in units else f for f in record_fields(kind)))
    return get if len(record_fields(kind)) > 1 else (lambda rec: (get(rec),))


@functools.cache
def _unit_fields(kind: type) -> frozenset[str]:
    """The fields of record type ``kind`` that hold a :class:`UnitId` (a row takes its name)."""
    return frozenset(f.name for f in dataclasses.fields(kind) if "UnitId" in str(f.type))


_END_GET = _getter(EndRecord)


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


def transfer_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """transfers.parquet rows of one request: each transfer joined with the decode record of the
    same attempt (real bytes and real arrival)."""
    # (record types are final: compared with ``is``, cheaper than isinstance for every record)
    transfers = [t for t in records if type(t) is TransferRecord]
    if not transfers:
        return []
    decode = {r.attempt: r for r in records if type(r) is DecodeRecord}
    out = []
    for t in transfers:
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

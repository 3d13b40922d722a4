"""Per-request records: every requests.parquet field has one owner, and a redone request's row
takes the latest attempt's records (the redone prefill's first token), on the virtual engine."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import experiment_dict, make_experiment, make_request

from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import Experiment, experiment_from_dict
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.messages import Request, RequestEnded
from disagg.cluster.records import (
    DERIVED,
    FIELD_OWNERS,
    DecodeRecord,
    EndRecord,
    PrefillRecord,
    PrefillRouting,
    UnitId,
    record_fields,
)
from disagg.cluster.rows import DuplicateRecord, fold
from disagg.experiments.results.tables import PREFIX_COLUMNS, REDONE_COLUMNS, REQUEST_COLUMNS
from disagg.experiments.run import assemble

LOSS_S = 2.0


def test_every_column_has_exactly_one_owner() -> None:
    owned = [c for c in REQUEST_COLUMNS if FIELD_OWNERS.get(c) not in (None, "derived")]
    assert set(REQUEST_COLUMNS) <= set(FIELD_OWNERS)
    assert set(REQUEST_COLUMNS) - set(owned) == set(DERIVED)
    assert {FIELD_OWNERS[c] for c in owned} == {
        "loadgen", "router", "prefill", "fabric", "decode", "collector"}


def _spied_run(exp: Experiment | None = None, **overrides: Any
               ) -> tuple[list[dict[str, Any]], dict[int, list[Any]], Any]:
    """A virtual run; the records each RequestEnded brought to the collector, by request id."""
    exp = exp or make_experiment(**overrides)
    seen: dict[int, list[Any]] = defaultdict(list)

    def spy(comps: dict[str, Any]) -> None:
        collector = comps["collector"]
        handle = collector.handlers[RequestEnded]

        def on_ended(msg: RequestEnded) -> None:
            seen[msg.request_id].extend(msg.records)
            handle(msg)

        collector.handlers[RequestEnded] = on_ended

    raw = run_virtual(exp, on_start=spy)
    rows = assemble(exp, raw).tables["requests"].to_pylist()
    return rows, seen, exp


@pytest.fixture(scope="module")
def redone_run() -> tuple[list[dict[str, Any]], dict[int, list[Any]], Any]:
    """Layer-wise streaming, two decode units, decode-0 lost at 2 s: its requests are redone."""
    return _spied_run(decode__units=2, workload__rate_per_s=12.0, fabric__layer_wise=True,
                      workload__output_tokens={"kind": "fixed", "value": 1500},
                      faults={"unit_loss": [{"unit": "decode-0", "at_s": LOSS_S}]})


def test_no_two_components_write_the_same_field(redone_run) -> None:
    rows, seen, _ = redone_run
    assert any(r["attempts"] == 2 for r in rows)  # the run did exercise redo
    for rid, records in seen.items():
        writers: dict[str, set[str]] = defaultdict(set)
        per_attempt: dict[tuple[type, int], int] = defaultdict(int)
        for rec in records:
            kind = type(rec)
            owner = "loadgen" if kind is Request else kind.OWNER
            for f in record_fields(kind):
                writers[f].add(owner)
            if kind is not Request:
                per_attempt[(kind, rec.attempt)] += 1
        assert all(len(w) == 1 for w in writers.values()), (rid, dict(writers))
        assert all(n == 1 for n in per_attempt.values()), rid
        assert all(FIELD_OWNERS[f] == next(iter(w)) for f, w in writers.items())


def test_a_redone_request_keeps_the_redone_prefills_first_token(redone_run) -> None:
    rows, seen, exp = redone_run
    redone = [r for r in rows if r["attempts"] == 2 and r["status"] == "completed"]
    assert redone
    prefills = [p for recs in seen.values() for p in recs if isinstance(p, PrefillRecord)]
    units = {(rec.request_id, rec.attempt): rec.prefill_unit.name for recs in seen.values()
             for rec in recs if isinstance(rec, PrefillRouting)}
    prompts = {r["request_id"]: r["prompt_tokens"] for r in rows}
    for row in redone:
        [again] = [p for p in seen[row["request_id"]]
                   if isinstance(p, PrefillRecord) and p.attempt == 1]
        assert again.prefill_start_s >= LOSS_S  # the redo's prefill, not the lost first one
        # the redone batch: every prefill that started then on that unit
        batch = [prompts[p.request_id] for p in prefills
                 if p.prefill_start_s == again.prefill_start_s
                 and units.get((p.request_id, p.attempt)) == row["prefill_unit"]]
        end = again.prefill_start_s + prefill_time(
            batch, exp.model, exp.prefill.hardware, exp.prefill.chips_per_unit).seconds
        assert row["prefill_start_s"] == again.prefill_start_s
        assert row["first_token_s"] == pytest.approx(end, rel=1e-12)
        assert row["first_token_s"] > row["prefill_start_s"]  # not the streamed KV's start


def test_a_lost_prefill_units_earlier_requests_keep_their_first_token() -> None:
    # layer-wise: the KV leaves at the prefill's start; the first token is still its end
    rows, _, _ = _spied_run(workload__rate_per_s=8.0, fabric__layer_wise=True,
                            faults={"unit_loss": [{"unit": "prefill-0", "at_s": LOSS_S}]})
    early = [r for r in rows if r["prefill_unit"] == "prefill-0" and r["status"] == "completed"
             and r["first_token_s"] is not None and r["first_token_s"] < LOSS_S]
    assert early
    assert all(r["prefill_start_s"] is not None and r["first_token_s"] > r["prefill_start_s"]
               for r in early)


def test_fold_takes_the_latest_attempt_and_the_first_end() -> None:
    req = make_request(request_id=3, arrival_s=1.0, output_tokens=11)
    first = PrefillRecord(3, 0, 1.0, 1.5, 10.0)
    again = PrefillRecord(3, 1, 4.0, 4.5, 10.0)
    decode = DecodeRecord(3, 1, 4.6, 4.7, 5.5, 1, 4.6)
    row = fold([req, again, decode, first], EndRecord(3, "completed", "", 5.5, 2))
    assert (row["prefill_start_s"], row["first_token_s"]) == (4.0, 4.5)
    assert row["ttft_s"] == pytest.approx(3.5) and row["tpot_s"] == pytest.approx(0.1)
    assert row["attempts"] == 2 and row["end_s"] == 5.5
    with pytest.raises(DuplicateRecord):
        fold([req, first, PrefillRecord(3, 0, 2.0, 2.5, 10.0)], None)


def test_fold_gives_one_row_whatever_the_records_order_or_repeats() -> None:
    req = make_request(request_id=3, arrival_s=1.0, output_tokens=11)
    routing = PrefillRouting(3, 0, UnitId("prefill", 2), 0.25)
    prefill = PrefillRecord(3, 0, 1.0, 1.5, 10.0)
    end = EndRecord(3, "completed", "", 2.5, 1)
    expected = {"request_id": 3, "slo_class": "default", "arrival_s": 1.0, "prompt_tokens": 1000,
                "output_tokens": 11, "ttft_slo_s": 1.0, "tpot_slo_s": 0.05,
                "prefill_start_s": 1.0, "first_token_s": 1.5, "kv_bytes": 10.0,
                "cached_tokens": None, "prefill_unit": "prefill-2", "prefill_view_age_s": 0.25,
                "status": "completed", "reason": "", "end_s": 2.5, "attempts": 1,
                "redone_from": None, "last_token_s": 2.5, "ttft_s": 0.5, "e2e_s": 1.5,
                "tpot_s": 0.1, "slo_met": False}
    # the arrival's fields first, then each record type's in the order they came, then the end's
    # and the derived ones; a type seen twice (an older attempt first) changes nothing
    older = PrefillRecord(3, -1, 0.0, 0.5, 10.0)
    for records in ([prefill, req, routing], [older, req, prefill, routing],
                    [prefill, routing, req, req]):
        row = fold(records, end)
        assert list(row) == list(expected) and row == pytest.approx(expected)
    assert fold([], EndRecord(4, "failed", "lost", None, 1)) == {
        "status": "failed", "reason": "lost", "end_s": None, "attempts": 1, "redone_from": None,
        "slo_met": False}


def test_unit_ids_are_data() -> None:
    unit = UnitId("decode", 3)
    assert (unit.kind, unit.index, unit.name) == ("decode", 3, "decode-3")
    routing = PrefillRouting(1, 0, UnitId("prefill", 1), 0.0)
    assert fold([make_request(request_id=1), routing], None)["prefill_unit"] == "prefill-1"


def test_the_documented_owner_table_matches_the_code() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    names = {"load generator": "loadgen", "router": "router", "prefill unit": "prefill",
             "fabric": "fabric", "decode unit": "decode", "collector": "collector",
             "derived by `rows.derive` from the above": "derived"}
    documented: dict[str, str] = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in names:
            for span in re.findall(r"`([^`]+)`", cells[0].split("(")[0]):
                for col in span.split(","):
                    documented[col.strip()] = names[cells[1]]
    every = [*REQUEST_COLUMNS, *PREFIX_COLUMNS, *REDONE_COLUMNS]
    assert {c: documented.get(c) for c in every} == {c: FIELD_OWNERS[c] for c in every}


def test_the_optional_columns_have_one_owner() -> None:
    assert FIELD_OWNERS["cached_tokens"] == "prefill"
    assert FIELD_OWNERS["redone_from"] == "collector"


def test_a_colocated_runs_fields_have_one_owner_each() -> None:
    """A colocated unit writes the prefill and decode records; the router both routings."""
    raw = experiment_dict(workload__rate_per_s=4.0)
    del raw["prefill"], raw["decode"]
    raw["colocated"] = {"hardware": "h100", "chips_per_unit": 8, "units": 2}
    rows, seen, _ = _spied_run(experiment_from_dict(raw))
    assert rows and all(r["status"] == "completed" for r in rows)
    for rid, records in seen.items():
        writers: dict[str, set[str]] = defaultdict(set)
        for rec in records:
            owner = "loadgen" if type(rec) is Request else type(rec).OWNER
            for f in record_fields(type(rec)):
                writers[f].add(owner)
        assert all(len(w) == 1 for w in writers.values()), (rid, writers)
    for r in rows:
        assert r["decode_unit"] == r["prefill_unit"] and r["decode_view_age_s"] is None
        assert r["prefill_start_s"] <= r["first_token_s"] <= r["last_token_s"]
        assert r["kv_bytes"] is None

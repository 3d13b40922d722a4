"""The event log (events.msgpack) and its Chrome trace: one event per batch and per transfer."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
from conftest import make_experiment

from disagg.experiments.cli.main import main
from disagg.experiments.results.timeline import TraceFormatError, read_event_log
from disagg.experiments.run import run_experiment


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    out = tmp_path_factory.mktemp("traced") / "run"
    exp = make_experiment(output__event_log=True, workload__rate_per_s=8.0,
                          prefill__units_per_host=1)
    result = run_experiment(exp, out)
    chrome = out.parent / "trace.json"
    assert main(["trace", str(out), "--chrome", str(chrome)]) == 0
    return result, out, json.loads(chrome.read_text())


def _batches(raw):
    return {c["name"]: len(c["log"]["batches"]) for c in raw["components"] if "log" in c}


def test_event_log_holds_every_arrival_batch_transfer_and_end(traced) -> None:
    result, out, _ = traced
    header, events = read_event_log(out / "events.msgpack")
    assert header["experiment"] == "t" and header["time_unit"] == "emu s"
    kinds = defaultdict(int)
    for e in events:
        kinds[e["kind"]] += 1
    n = result.summary["submitted"]
    assert kinds["arrival"] == n == kinds["end"]
    assert kinds["batch"] == sum(_batches(result.raw).values())
    assert kinds["transfer"] == pq.read_table(out / "transfers.parquet").num_rows > 0
    assert kinds["admission"] == result.summary["completed"]
    times = [e["t_s"] for e in events]
    assert times == sorted(times)


def test_chrome_trace_has_one_event_per_batch_and_per_transfer(traced) -> None:
    result, out, trace = traced
    events = trace["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    per_unit = defaultdict(int)
    for e in events:
        if e["ph"] == "X" and e["cat"] == "batch":
            per_unit[names[(e["pid"], e["tid"])]] += 1
    assert dict(per_unit) == _batches(result.raw)
    transfers = [e for e in events if e["ph"] == "X" and e["cat"] == "transfer"]
    rows = pq.read_table(out / "transfers.parquet").to_pylist()
    assert sorted(e["args"]["request_id"] for e in transfers) == sorted(r["request_id"] for r in rows)
    for e, r in zip(sorted(transfers, key=lambda e: e["args"]["request_id"]),
                    sorted(rows, key=lambda r: r["request_id"]), strict=True):
        assert e["ts"] == pytest.approx(r["start_s"] * 1e6)
        assert e["dur"] == pytest.approx((r["modeled_end_s"] - r["start_s"]) * 1e6)
    links = {names[(e["pid"], e["tid"])].split(" #")[0] for e in transfers}
    assert links == {"prefill-host-0/egress", "prefill-host-1/egress"}
    assert {e["name"] for e in events if e["ph"] == "C"} >= {"decode-host-0/ingress Gb/s"}


def test_spans_on_one_track_never_overlap(traced) -> None:
    _, _, trace = traced
    tracks = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in tracks.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 1e-6


def test_trace_without_an_event_log_is_bad_input(tmp_path, capsys) -> None:
    run_experiment(make_experiment(), tmp_path / "plain")
    assert main(["trace", str(tmp_path / "plain"), "--chrome", str(tmp_path / "t.json")]) == 2
    assert "output.event_log = true" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.msgpack").write_bytes(b"\x01\x02")
    with pytest.raises(TraceFormatError):
        read_event_log(tmp_path / "bad" / "events.msgpack")
    assert main(["trace", str(tmp_path / "bad"), "--chrome", str(tmp_path / "t.json")]) == 2


def test_trace_never_replaces_an_existing_file_unless_forced(traced, capsys) -> None:
    _, out, _ = traced
    mine = out.parent / "mine.json"
    mine.write_text("keep me")
    assert main(["trace", str(out), "--chrome", str(mine)]) == 2
    assert "already exists" in capsys.readouterr().err and mine.read_text() == "keep me"
    assert main(["trace", str(out), "--chrome", str(mine), "--force"]) == 0
    assert json.loads(mine.read_text())["traceEvents"]

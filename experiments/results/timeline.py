"""A run's event log (``events.msgpack``) and its conversion to the Chrome trace format.

The components already keep their history locally and hand it over once in ``results()`` (no
message per event): the load generator its arrivals, prefill and decode units their batches
(``UnitLog.batches``; a decode "batch" is a run of iterations with a fixed batch), the decode
units their admissions, the fabric its transfers and link rates, the collector every request's
end. :func:`event_log` flattens that into events ordered by emu time; the file is a msgpack stream
of maps, a header first. :func:`chrome_trace` turns events into the JSON that Perfetto
(ui.perfetto.dev) and chrome://tracing open: one track per unit and per fabric link (overlapping
transfers on one link get extra lanes), ``ts`` in emu microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

from disagg.cluster.component import TIME_EPS_S
from disagg.experiments.results.columns import by_name

FORMAT = "disagg-events"
VERSION = 1
_PIDS = {"prefill": (1, "prefill pool"), "decode": (2, "decode pool"), "fabric": (3, "fabric"),
         "requests": (4, "requests"), "colocated": (5, "colocated pool")}


def _unit_events(name: str, comp: dict[str, Any]) -> list[dict[str, Any]]:
    pool = comp["unit"]["kind"]
    return [{"kind": "batch", "unit": name, "pool": pool, "t_s": s, "end_s": e, "requests": n,
             "tokens": tok} for s, e, n, tok in comp.get("log", {}).get("batches", [])]


def _fabric_events(fabric: dict[str, Any], transfers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [{"kind": "transfer", "unit": "fabric", "t_s": t["start_s"], "end_s": t["modeled_end_s"],
            "request_id": t["request_id"], "src_unit": t["src_unit"], "dst_unit": t["dst_unit"],
            "src_host": t["src_host"], "dst_host": t["dst_host"], "bytes": t["modeled_bytes"]}
           for t in transfers]
    out += [{"kind": "link_rate", "unit": "fabric", "t_s": t, "link": link, "bytes_per_s": rate,
             "flows": flows} for t, link, rate, flows in fabric.get("link_log", [])]
    return out


def _request_events(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"kind": "arrival", "unit": "loadgen", "t_s": r["arrival_s"],
            "request_id": r["request_id"], "prompt_tokens": r["prompt_tokens"],
            "output_tokens": r["output_tokens"]}]
    if r.get("decode_start_s") is not None:
        out.append({"kind": "admission", "unit": r["decode_unit"], "t_s": r["decode_start_s"],
                    "request_id": r["request_id"]})
    end_s = r.get("end_s")
    if end_s is not None:
        unit = r.get("decode_unit") or r.get("prefill_unit") or "router"
        out.append({"kind": "end", "unit": unit, "t_s": end_s, "request_id": r["request_id"],
                    "status": r["status"], "reason": r.get("reason") or ""})
    return out


def event_log(raw: dict[str, Any], rows: list[dict[str, Any]],
              transfers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event of a run ordered by emu time: arrivals, batches, admissions, transfers, link
    rate changes and request ends. ``rows`` and ``transfers`` are the rows of requests.parquet
    and transfers.parquet; batches and link rates are kept by the components when
    ``output.event_log`` is on."""
    events: list[dict[str, Any]] = []
    for name, comp in by_name(raw).items():
        if comp.get("unit") is not None:
            events += _unit_events(name, comp)
        elif name == "fabric":
            events += _fabric_events(comp, transfers)
    for r in rows:
        events += _request_events(r)
    events.sort(key=lambda e: (e["t_s"], e["kind"]))
    return events


def event_log_bytes(events: Iterable[dict[str, Any]], experiment: str) -> bytes:
    """``events.msgpack``: a header map, then one map per event."""
    packer = msgpack.Packer()
    header = {"kind": "header", "format": FORMAT, "version": VERSION, "experiment": experiment,
              "time_unit": "emu s"}
    return packer.pack(header) + b"".join(packer.pack(e) for e in events)


class TraceFormatError(ValueError):
    """A file is not a disagg event log."""


def read_event_log(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, events) of an ``events.msgpack`` file."""
    with open(path, "rb") as f:
        items = list(msgpack.Unpacker(f, raw=False, strict_map_key=False))
    if not items or not isinstance(items[0], dict) or items[0].get("format") != FORMAT:
        raise TraceFormatError(f"{path} is not a disagg event log (no '{FORMAT}' header)")
    return items[0], items[1:]


class _Tracks:
    """Chrome trace (pid, tid) per track name, with metadata events naming them."""

    def __init__(self) -> None:
        self.tids: dict[tuple[int, str], int] = {}
        self.meta: list[dict[str, Any]] = [
            {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": label}}
            for pid, label in _PIDS.values()]
        self.lanes: dict[str, list[float]] = {}  # link -> end time of each lane's last transfer

    def tid(self, pid: int, name: str) -> int:
        key = (pid, name)
        if key not in self.tids:
            self.tids[key] = len(self.tids) + 1
            self.meta.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": self.tids[key],
                              "args": {"name": name}})
            self.meta.append({"ph": "M", "name": "thread_sort_index", "pid": pid,
                              "tid": self.tids[key], "args": {"sort_index": self.tids[key]}})
        return self.tids[key]

    def lane(self, link: str, start_s: float, end_s: float) -> str:
        """The link's first lane free at ``start_s`` (transfers on one track must not overlap)."""
        ends = self.lanes.setdefault(link, [])
        for i, end in enumerate(ends):
            if end <= start_s + TIME_EPS_S:
                ends[i] = end_s
                return link if i == 0 else f"{link} #{i + 1}"
        ends.append(end_s)
        return link if len(ends) == 1 else f"{link} #{len(ends)}"


def _us(seconds: float) -> float:
    return seconds * 1e6


def _trace_event(e: dict[str, Any], tracks: _Tracks) -> dict[str, Any] | None:
    kind = e["kind"]
    if kind == "batch":
        pid = _PIDS[e["pool"]][0]
        return {"ph": "X", "cat": "batch", "name": f"batch {e['requests']} req", "pid": pid,
                "tid": tracks.tid(pid, e["unit"]), "ts": _us(e["t_s"]),
                "dur": _us(e["end_s"] - e["t_s"]),
                "args": {"requests": e["requests"], "tokens": e["tokens"]}}
    if kind == "transfer":
        pid = _PIDS["fabric"][0]
        link = (f"{e['src_host']}/egress" if e["src_host"] != e["dst_host"]
                else f"{e['src_host']}/local")
        return {"ph": "X", "cat": "transfer", "name": f"KV r{e['request_id']}", "pid": pid,
                "tid": tracks.tid(pid, tracks.lane(link, e["t_s"], e["end_s"])),
                "ts": _us(e["t_s"]), "dur": _us(e["end_s"] - e["t_s"]),
                "args": {k: e[k] for k in ("request_id", "src_unit", "dst_unit", "bytes")}}
    if kind == "link_rate":
        pid = _PIDS["fabric"][0]
        return {"ph": "C", "cat": "link", "name": f"{e['link']} Gb/s", "pid": pid, "tid": 0,
                "ts": _us(e["t_s"]), "args": {"Gb/s": e["bytes_per_s"] * 8 / 1e9}}
    if kind == "admission":
        pid = _PIDS["decode"][0]
        return {"ph": "i", "s": "t", "cat": "admission", "name": f"admit r{e['request_id']}",
                "pid": pid, "tid": tracks.tid(pid, e["unit"]), "ts": _us(e["t_s"])}
    if kind in ("arrival", "end"):
        pid = _PIDS["requests"][0]
        track = "arrivals" if kind == "arrival" else e["status"]
        args = {k: v for k, v in e.items() if k not in ("kind", "t_s")}
        return {"ph": "i", "s": "t", "cat": kind, "name": f"{kind} r{e['request_id']}", "pid": pid,
                "tid": tracks.tid(pid, track), "ts": _us(e["t_s"]), "args": args}
    return None


def chrome_trace(events: Iterable[dict[str, Any]], experiment: str = "") -> dict[str, Any]:
    """The Chrome trace JSON object for ``events`` (``ts`` and ``dur`` in emu microseconds)."""
    tracks = _Tracks()
    body = [t for e in events if (t := _trace_event(e, tracks)) is not None]
    return {"traceEvents": tracks.meta + body, "displayTimeUnit": "ms",
            "otherData": {"experiment": experiment, "clock": "emu time, microseconds"}}

"""Invariants of a run's results, checked from the results contract alone (README, "What a run
gives you"; docs/results.md): ``requests.parquet``, ``transfers.parquet``, ``summary.json`` and the
resolved experiment. Nothing here reads a unit's internals, so the same checks hold for every
engine (virtual, ray, serve).

:func:`check_results` returns a list of :class:`Violation` (empty when the run is consistent):

- ``batch_cap``: at no time does a decode unit run more than its admission policy's
  ``max_batch_requests`` requests (a request runs from ``decode_start_s`` to ``last_token_s``),
  nor a colocated unit more than ``max_running`` (from ``prefill_start_s`` to ``last_token_s``);
- ``kv_capacity``: the KV a unit holds never exceeds its capacity (each running request holds
  ``kv_bytes(prompt_tokens + output_tokens)`` over the same interval);
- ``ledger``: one row per request id, each in one of the four statuses, and the counts by status
  in ``summary.json`` equal the rows'; a completed request has its first (and last) token;
- ``conservation``: a completed disaggregated request's latest transfer moved its ``kv_bytes``
  (the prompt's KV; less only with ``decode_keep``, by what the decode unit already held), and
  the completed requests' output tokens sum to ``total_output_tokens``;
- ``causality``: arrival <= prefill start <= first token; the transfer starts no earlier than
  the first token (the prefill batch's start under layer-wise streaming); decode starts once its
  KV arrived (the transfer's end) and the last token comes at or after the decode start;
- with agent tasks (``tasks.parquet``): ``task_ledger``, ``task_sequence`` (no call before its
  predecessor ended) and ``task_status`` (``results/task_invariants.py``);
- ``placement`` and ``transfer_speed``: transfers on the topology's hosts, none faster than its
  path's narrowest link and latency allow (:mod:`~disagg.experiments.results.fabric_invariants`).

Tolerance: times are compared with ``TIME_EPS_S`` (1e-9 emu s), the components' own tolerance
for "simultaneous" — emu times are float sums of modeled durations, and two writers of one
instant (a request's release and the next admission at the same iteration boundary) may differ
by rounding. A request ending within ``TIME_EPS_S`` of another's start is counted as gone
before it starts. Byte and capacity sums are compared with a relative 1e-9 (float sums).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from disagg.cluster.component import TIME_EPS_S
from disagg.cluster.config import Experiment, load_experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.facts import decode_kv_capacity, decode_paged_kv
from disagg.cluster.hardware.perf import kv_bytes
from disagg.experiments.results.task_invariants import check_tasks
from disagg.experiments.results.fabric_invariants import check_transfers
from disagg.policies.batching import DECODE_ADMISSION

STATUSES = ("completed", "rejected", "failed", "cancelled")
REL_EPS = 1e-9  # relative tolerance of byte sums (float additions of per-request KV bytes)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which (``invariant``), where (``unit`` and/or ``request_id``, when
    it concerns one) and a sentence with the numbers."""

    invariant: str
    message: str
    unit: str | None = None
    request_id: int | None = None

    def describe(self) -> str:
        """One line: ``invariant [unit] [request N]: message``."""
        where = " ".join(x for x in (self.unit, None if self.request_id is None
                                     else f"request {self.request_id}") if x)
        return f"{self.invariant}{' ' + where if where else ''}: {self.message}"


def check_results(exp: Experiment, requests: pa.Table, transfers: pa.Table,
                  summary: dict[str, Any], tasks: pa.Table | None = None) -> list[Violation]:
    """Every invariant of one run's results (see the module docstring); [] when all hold."""
    rows = requests.to_pylist()
    out = check_ledger(rows, summary)
    out += check_occupancy(exp, rows)
    out += check_conservation(exp, rows, transfers.to_pylist(), summary)
    out += check_causality(exp, rows)
    if tasks is not None:
        out += [Violation(k, m) for k, m in check_tasks(rows, tasks.to_pylist(), summary)]
    out += [Violation(*broken) for broken in check_transfers(exp, transfers.to_pylist())]
    return out


def check_folder(folder: Path | str) -> list[Violation]:
    """:func:`check_results` on a written results folder (its config.toml, requests.parquet,
    transfers.parquet and summary.json); ConfigError when the folder lacks one or it is
    unreadable."""
    folder = Path(folder)
    files = ("config.toml", "requests.parquet", "transfers.parquet", "summary.json")
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"argument 'DIR': {folder} has no {', '.join(missing)}; allowed: a "
                          "results folder written by disagg run")
    exp = load_experiment(folder / "config.toml")
    try:
        requests = pq.read_table(folder / "requests.parquet")
        transfers = pq.read_table(folder / "transfers.parquet")
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        tasks = (pq.read_table(folder / "tasks.parquet")
                 if (folder / "tasks.parquet").is_file() else None)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ConfigError(f"argument 'DIR': {folder} holds an unreadable results file "
                          f"({type(e).__name__}: {e})") from None
    return check_results(exp, requests, transfers, summary, tasks)


# -- ledger -------------------------------------------------------------------------------------
def check_ledger(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[Violation]:
    """One row per request id, one known status each, the summary's counts equal to the rows'."""
    out: list[Violation] = []
    ids = [r["request_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        out.append(Violation("ledger", f"request ids with more than one row: {dup}"))
    for r in rows:
        if r["status"] not in STATUSES:
            out.append(Violation("ledger", f"status {r['status']!r} is none of {STATUSES}",
                                 request_id=r["request_id"]))
        elif r["status"] == "completed" and not _tokens_done(r):
            out.append(Violation("ledger", "completed without its first and last token",
                                 request_id=r["request_id"]))
    counts = {"submitted": len(rows), **{s: sum(r["status"] == s for r in rows) for s in STATUSES}}
    for key, n in counts.items():
        if summary.get(key) != n:
            out.append(Violation("ledger", f"summary.json {key} = {summary.get(key)}, "
                                           f"requests.parquet has {n}"))
    return out


def _tokens_done(r: dict[str, Any]) -> bool:
    if r["first_token_s"] is None:
        return False
    return r["output_tokens"] <= 1 or r["last_token_s"] is not None


# -- occupancy: batch caps and KV capacity ------------------------------------------------------
def decode_batch_cap(exp: Experiment) -> int | None:
    """The decode admission policy's ``max_batch_requests`` (given, or its default), or None
    for a policy without one."""
    spec = exp.policies.decode_admission
    if "max_batch_requests" in spec.params:
        return int(spec.params["max_batch_requests"])
    param = inspect.signature(DECODE_ADMISSION.factory(spec.name)).parameters.get(
        "max_batch_requests")
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def check_occupancy(exp: Experiment, rows: list[dict[str, Any]]) -> list[Violation]:
    """Per decode / colocated unit: requests running at once <= the cap, KV held <= capacity."""
    colocated = exp.colocated is not None
    cap = exp.colocated.max_running if exp.colocated is not None else decode_batch_cap(exp)
    capacity = decode_kv_capacity(exp)
    paged = decode_paged_kv(exp)
    start_col = "prefill_start_s" if colocated else "decode_start_s"
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for r in rows:  # a request holds its place from its start to its last token
        if r["decode_unit"] is not None and r[start_col] is not None \
                and r["last_token_s"] is not None:
            by_unit.setdefault(r["decode_unit"], []).append(r)
    out: list[Violation] = []
    for unit, held in sorted(by_unit.items()):
        starts = np.array([r[start_col] for r in held])
        ends = np.array([r["last_token_s"] for r in held])
        need = _kv_held(exp, held)
        if paged is not None:  # a preempted request's interval includes its wait: not counted
            whole = np.array([not r.get("preemptions") for r in held])
            starts, ends, need = starts[whole], ends[whole], need[whole]
        if cap is not None:
            peak, at = peak_overlap(starts, ends, np.ones(len(starts)))
            if peak > cap:
                what = "max_running" if colocated else "max_batch_requests"
                out.append(Violation("batch_cap", f"{int(peak)} requests running at "
                                     f"{at:.6f} s; {what} = {cap}", unit=unit))
        peak, at = peak_overlap(starts, ends, need)
        if peak > capacity * (1 + REL_EPS):
            out.append(Violation("kv_capacity", f"{peak:.6g} KV bytes held at {at:.6f} s; "
                                 f"capacity {capacity:.6g}", unit=unit))
    return out


def _kv_held(exp: Experiment, held: list[dict[str, Any]]) -> np.ndarray:
    """KV bytes each request surely held from its start to its last token: prompt + output
    (reserved up front), or with paged KV the blocks of its context at admission (blocks only
    grow while it runs: a lower bound, so the check stays sound). A decode unit admits a
    request with its first token (prompt + 1 tokens); a colocated unit allocates the prompt's
    blocks when its prefill starts."""
    paged = decode_paged_kv(exp)
    if paged is None:
        return np.array([float(kv_bytes(r["prompt_tokens"] + r["output_tokens"], exp.model))
                         for r in held])
    first = 0 if exp.colocated is not None else 1
    return np.array([paged.bytes_for(r["prompt_tokens"] + first) for r in held])


def peak_overlap(starts: np.ndarray, ends: np.ndarray,
                 weights: np.ndarray) -> tuple[float, float]:
    """The largest sum of ``weights`` of intervals [start, end) open at once, and the first emu
    time it is reached; an interval ending within ``TIME_EPS_S`` of another's start is gone
    before that one starts."""
    if len(starts) == 0:
        return 0.0, 0.0
    keys = np.concatenate((starts, ends - TIME_EPS_S))
    deltas = np.concatenate((weights, -weights))
    order = np.lexsort((deltas, keys))  # by time; at one time, releases before admissions
    level = np.cumsum(deltas[order])
    i = int(np.argmax(level))
    return float(level[i]), float(keys[order][i])


# -- conservation -------------------------------------------------------------------------------
def check_conservation(exp: Experiment, rows: list[dict[str, Any]],
                       transfers: list[dict[str, Any]], summary: dict[str, Any]) -> list[Violation]:
    """Completed requests' KV bytes moved by their latest transfer; output tokens summed."""
    out: list[Violation] = []
    done = [r for r in rows if r["status"] == "completed"]
    tokens = sum(r["output_tokens"] for r in done)
    if summary.get("total_output_tokens") != tokens:
        out.append(Violation("conservation", f"summary.json total_output_tokens = "
                             f"{summary.get('total_output_tokens')}, completed requests' "
                             f"output_tokens sum to {tokens}"))
    if exp.colocated is not None:
        return out  # no KV crosses the fabric
    latest: dict[int, dict[str, Any]] = {}
    for t in transfers:
        held = latest.get(t["request_id"])
        if held is None or t["attempt"] > held["attempt"]:
            latest[t["request_id"]] = t
    keep = exp.prefix_cache.decode_keep
    for r in done:
        if r["output_tokens"] <= 1:
            continue  # ends at its prefill: no KV moves
        out += _bytes_of(r, latest.get(r["request_id"]), exp, keep)
    return out


def _bytes_of(r: dict[str, Any], t: dict[str, Any] | None, exp: Experiment,
              keep: bool) -> list[Violation]:
    rid = r["request_id"]
    prompt_kv = float(kv_bytes(r["prompt_tokens"], exp.model))
    if r["kv_bytes"] is None or abs(r["kv_bytes"] - prompt_kv) > REL_EPS * prompt_kv:
        return [Violation("conservation", f"kv_bytes {r['kv_bytes']} is not the prompt's KV "
                          f"({prompt_kv:.6g} bytes for {r['prompt_tokens']} tokens)",
                          request_id=rid)]
    if t is None:
        return [Violation("conservation", "completed with no row in transfers.parquet",
                          request_id=rid)]
    moved = t["modeled_bytes"]
    slack = REL_EPS * prompt_kv
    ok = (-slack <= moved <= prompt_kv + slack) if keep else abs(moved - prompt_kv) <= slack
    if ok:
        return []
    allowed = "0..kv_bytes (decode_keep)" if keep else "kv_bytes"
    return [Violation("conservation", f"transfer moved {moved:.6g} bytes; kv_bytes "
                      f"{prompt_kv:.6g}; allowed {allowed}", request_id=rid)]


# -- causality ----------------------------------------------------------------------------------
def check_causality(exp: Experiment, rows: list[dict[str, Any]]) -> list[Violation]:
    """Each request's times in order. A redone request (``attempts`` > 1) may hold its first
    end's decode fields beside a later attempt's prefill (docs/results.md, "A redone
    request"), so only the orders within one stage are checked for it."""
    colocated = exp.colocated is not None
    transfer_from = "prefill_start_s" if exp.fabric.layer_wise else "first_token_s"
    out: list[Violation] = []
    for r in rows:
        chain = [("arrival_s", "prefill_start_s"), ("prefill_start_s", "first_token_s"),
                 ("decode_start_s", "last_token_s")]
        if (r["attempts"] or 1) == 1:
            chain += ([("first_token_s", "decode_start_s")] if colocated else
                      [(transfer_from, "transfer_start_s"),
                       ("transfer_start_s", "transfer_end_s"),
                       ("transfer_end_s", "decode_start_s")])
        for early, late in chain:
            a, b = r.get(early), r.get(late)
            if a is not None and b is not None and a > b + TIME_EPS_S:
                out.append(Violation("causality", f"{early} {a:.9f} after {late} {b:.9f}",
                                     request_id=r["request_id"]))
    return out

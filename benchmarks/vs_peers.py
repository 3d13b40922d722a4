"""disagg's virtual engine against peer simulators on the same trace, whole process, interleaved.

    python benchmarks/vs_peers.py                 # install the peers if needed, 3 rounds
    python benchmarks/vs_peers.py --rounds 1 --cache /tmp/peers
    python benchmarks/vs_peers.py --python /usr/bin/python3.11   # every side on that interpreter

Each peer lives in its own virtual environment under ``--cache`` (``python -m venv`` and ``pip
install`` of a pinned version from the registry pip is configured for), made once and reused.
When that install fails only because a dependency is a wheel stub that downloads the real wheel
from another index (ai-dynamo 1.6.1's ``aisimulate``), the peer's fallback installs it without
that dependency (``--no-deps``, then its other requirements) if the part benchmarked never
imports it; the table says so. Every side replays the Mooncake conversation trace
(experiments/traces/, 12,031 requests over 3,537 s, timestamps honoured) on a disaggregated
configuration where the peer has one:

- **disagg**: ``disagg run experiments/mooncake_conv.toml --engine virtual --no-live`` on the whole
  trace (the experiment's units, router and prefix caching);
- **dynamo**: ai-dynamo's offline trace replay, ``dynamo.replay.run_trace_replay`` called by a
  short driver (``python -c DYNAMO_DRIVER``) with 8 prefill and 2 decode mocker workers
  (the mocker's default timing model, 512-token blocks) behind its default, round-robin router;
- **dynamo-kv**: the same replay behind Dynamo's KV-aware router (``kv_router``), the
  counterpart of disagg's ``prefix_aware`` router (same venv as ``dynamo``);
- **dynamo-files**: the round-robin replay writing what disagg's run writes besides its
  summary: each request's record (``report_jsonl_path``) and every worker's state on disagg's
  0.5-s grid (``TelemetryOptions``), as JSON lines; by default the replay keeps only its
  summary (same venv);
- **vidur**: ``python -m vidur.main`` with the trace converted to its replay CSV, 10 replicas of
  4 GPUs (vidur has no prefill/decode split: colocated replicas).

Rounds are interleaved (disagg, peer, disagg, peer, ...) so a change of machine load hits both
sides alike; disagg's bytecode is compiled first, as an installed package has it (the peers'
is compiled by pip); each process is timed whole (start-up included) with its resource usage from
``os.wait4``, and the requests it completed are read from its own report (disagg's summary.json,
the replay report's summary). A peer that cannot be installed or run here gets a row saying why,
never a number. The bottom line gives each peer's ratio of the median walls and, since this
machine's speed drifts between rounds, the same ratio round by round (lowest, highest, median).
Each round also runs every side on the trace's first 10 s (38 requests): the table gives that
start-up wall and the rest of the whole run's wall per further request, which says whether a
difference lies in starting up or in the work per request.

Every side runs on one interpreter, named above the table: by default the one running this
script, ``--python PATH`` another one. Every side runs from a venv of its own made from that
interpreter under ``--cache``: disagg installed editable from this tree (``disagg``, or
``disagg@<path>`` for another interpreter; its dependencies from the registry, once, as the
README's install command gets them), each peer from its pinned release (``dynamo``,
``dynamo@<path>``, ...). So no side pays for what else is installed beside it: an environment
that holds many other distributions, or ``.pth`` files that import modules at every start
(this machine's global site-packages has both), costs every process it starts ≈ 25 ms here
before its first line runs, which a fresh venv does not. CPython builds differ in speed
(compiler flags, profile-guided optimisation, a shared or static libpython), for the peers' Python
parts as much as for disagg's. The table (markdown) goes to stdout; ``benchmarks/performance.py --only
vs-peers`` writes it into docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# sibling modules (the benchmarks run as scripts from this folder)
from ab_commits import compile_bytecode
from peer_sims import PEERS, Completed, Peer, install
from peer_table import (
    START_UP,
    START_UP_S,
    Timing,
    table,
)
from peer_venvs import DEFAULT_CACHE, interpreter_label, project_venv, venv_name

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "experiments" / "traces" / "mooncake_conversation_trace.jsonl"
EXPERIMENT = REPO / "experiments" / "mooncake_conv.toml"



def timed(argv: list[str], cwd: Path) -> Timing:
    """Run ``argv`` to completion and measure it whole (wall clock, rusage of the child)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        error = None
        if proc.returncode != 0:
            err.seek(0)
            text = err.read().decode(errors="replace")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            error = f"exit {proc.returncode}: {lines[-1].strip() if lines else 'no stderr'}"
            if "huggingface_hub" in text:
                error = ("it fetches data from the Hugging Face Hub, not reachable here ("
                         + error + ")")
    return Timing(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, error)


def disagg_command(trace: Path, scratch: Path, end_s: float = 4000.0) -> list[str]:
    """Arguments of ``disagg run`` on the virtual engine for the trace's requests before
    ``end_s`` (default: the whole trace; results to a scratch folder)."""
    del trace  # the experiment names the shipped copy of the same trace
    return ["run", str(EXPERIMENT), "--engine", "virtual",
            "--no-live", "--force", "--out", str(scratch / "disagg-out"),
            "--set", "workload.start_s=0", "--set", f"workload.end_s={end_s:g}",
            "--set", f"experiment.duration_s={end_s:g}"]


def trace_head(trace: Path, scratch: Path, end_s: float = START_UP_S) -> tuple[Path, int]:
    """The trace's requests that arrive before ``end_s`` (its ``timestamp`` is in ms) as a trace
    file of their own in ``scratch``, and how many they are."""
    out = scratch / f"{trace.stem}_first_{end_s:g}s.jsonl"
    with trace.open(encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and json.loads(ln)["timestamp"] < end_s * 1000]
    out.write_text("".join(lines), encoding="utf-8")
    return out, len(lines)


def disagg_completed(summary: dict[str, Any]) -> Completed:
    """Requests completed and submitted, from disagg's summary.json."""
    return int(summary["completed"]), int(summary["submitted"])


@dataclass(frozen=True)
class Side:
    """One side of the comparison: its argv, the report it writes (a path) and its reader."""

    name: str
    argv: list[str]
    report: Path | None
    completed: Callable[[dict[str, Any]], Completed] | None


def run_side(side: Side, cwd: Path) -> Timing:
    """One timed run of ``side`` and the completed requests its fresh report names."""
    if side.report is not None:
        side.report.unlink(missing_ok=True)  # never read a previous round's report
    t = timed(side.argv, cwd)
    if t.error or side.report is None or side.completed is None or not side.report.exists():
        return t
    summary = json.loads(side.report.read_text(encoding="utf-8"))
    return dataclasses.replace(t, completed=side.completed(summary))


def measure(peers: list[tuple[Peer, Path]], rounds: int, scratch: Path, head: Path,
            cli: Path | None = None, interpreter: Path | None = None) -> dict[str, list[Timing]]:
    """Interleaved rounds: disagg (the console script ``cli``, default the one beside this
    interpreter), then each runnable peer, ``rounds`` times (disagg's
    bytecode compiled first, by ``interpreter``); each side's whole run, then the same on the
    trace's first :data:`START_UP_S` seconds, ``head`` (:func:`trace_head`; results under
    ``NAME start-up``)."""
    compile_bytecode(REPO, interpreter)
    cli = cli or Path(sys.executable).with_name("disagg")
    summary = scratch / "disagg-out" / "summary.json"
    sides = [Side("disagg", [str(cli), *disagg_command(TRACE, scratch)], summary,
                  disagg_completed),
             Side(f"disagg {START_UP}", [str(cli), *disagg_command(TRACE, scratch, START_UP_S)],
                  summary, disagg_completed)]
    for p, py in peers:
        report = scratch / p.report if p.report else None
        sides += [Side(p.name, [str(py), *p.command(TRACE, scratch)], report, p.completed),
                  Side(f"{p.name} {START_UP}", [str(py), *p.command(head, scratch)], report,
                       p.completed)]
    out: dict[str, list[Timing]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for side in sides:
            t = run_side(side, scratch)
            out[side.name].append(t)
            print(f"round {r + 1} {side.name}: wall {t.wall_s:.2f} s, CPU {t.cpu_s:.2f} s"
                  + (f", completed {t.completed[0]:,} of {t.completed[1]:,}" if t.completed
                     else "") + (f", {t.error}" if t.error else ""), file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Install the peers (once), run every side interleaved, print the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="peers' venvs live here")
    ap.add_argument("--peers", default=",".join(p.name for p in PEERS),
                    help="comma-separated peers to include")
    ap.add_argument("--python", type=Path, default=None, metavar="PATH",
                    help="run every side on this interpreter (venvs made from it under --cache; "
                         "default: the one running this script)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        print(f"--rounds: {args.rounds} is not allowed; at least 1", file=sys.stderr)
        return 2
    if args.python is not None and not os.access(args.python, os.X_OK):
        print(f"--python: {args.python} is not an executable file; give the path of a Python "
              "interpreter", file=sys.stderr)
        return 2
    chosen = {n.strip() for n in args.peers.split(",") if n.strip()}
    unknown = sorted(chosen - {p.name for p in PEERS})
    if unknown:
        print(f"--peers: '{unknown[0]}' is not a peer; allowed: "
              f"{', '.join(p.name for p in PEERS)}", file=sys.stderr)
        return 2
    if args.python is not None and venv_name("disagg", args.python) == "disagg":
        args.python = None  # the interpreter running this script: its own environment, as usual
    interpreter = args.python or Path(sys.executable)
    cli, reason = project_venv(REPO, args.cache, interpreter)
    if cli is None:
        print(f"disagg could not be installed in a venv of {interpreter}: {reason}",
              file=sys.stderr)
        return 1
    args.cache.mkdir(parents=True, exist_ok=True)
    runnable, skipped, notes = [], {}, {}
    for peer in PEERS:
        if peer.name not in chosen:
            skipped[peer.name] = "left out (--peers)"
            continue
        python, reason = install(peer, args.cache, args.python)
        if python is None:
            skipped[peer.name] = reason
        else:
            runnable.append((peer, python))
            notes[peer.name] = reason
    with tempfile.TemporaryDirectory(prefix="vs-peers-") as tmp:
        head, first = trace_head(TRACE, Path(tmp))
        results = measure(runnable, args.rounds, Path(tmp), head, cli, interpreter)
    with TRACE.open(encoding="utf-8") as f:
        requests = (sum(1 for line in f if line.strip()), first)
    print(table(results, skipped, args.rounds, notes, interpreter_label(interpreter), requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())

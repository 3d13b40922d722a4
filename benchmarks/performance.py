"""Regenerate every measured table of docs/performance.md with one command.

Each step runs one benchmark script in a child process; the script prints markdown tables, and
the text goes into docs/performance.md between that step's markers::

    <!-- BEGIN generated:NAME -->
    ... replaced on every run ...
    <!-- END generated:NAME -->

with a line saying when, on which commit and machine and at what load average it was measured
(this machine is shared: compare ratios measured in one run, not figures from different runs). The
prose around the markers is written by hand and left alone. A step that fails leaves its block as
it was and makes the command exit 1 after the other steps ran.

    python benchmarks/performance.py                 # every step (about 45 minutes here)
    python benchmarks/performance.py --only virtual,messages --quick
    python benchmarks/performance.py --list          # the steps and their commands
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"
BENCH = REPO / "benchmarks"


@dataclass(frozen=True)
class Step:
    """One generated block: benchmark commands (script and arguments; their outputs follow each
    other in the block), for the full run and for a quick one."""

    name: str
    what: str
    commands: tuple[tuple[str, ...], ...]
    quick: tuple[tuple[str, ...], ...]


_SIZED = ("--prefill", "16", "--decode", "4", "--load", "0.8")  # 16 + 4 at 80 % prefill load
_SEPARATE_CONTROL = ("--set", "placement.one_control_actor=false")

STEPS: tuple[Step, ...] = (
    Step("virtual-speed", "virtual engine speed on three cluster sizes",
         (("virtual_speed.py", "--markdown", "--only", "speed"),),
         (("virtual_speed.py", "--markdown", "--only", "speed"),)),
    Step("vs-peers", "disagg against NVIDIA Dynamo's trace replay (and vidur) on the Mooncake trace",
         (("vs_peers.py", "--rounds", "9"),),
         (("vs_peers.py", "--rounds", "1"),)),
    Step("vs-peers-interpreter", "the same against Dynamo (its three rows), every side on "
         "Debian's CPython build (fails, keeping the block, where /usr/bin/python3.11 is "
         "missing)",
         (("vs_peers.py", "--rounds", "9", "--peers", "dynamo,dynamo-kv,dynamo-files", "--python",
           "/usr/bin/python3.11"),),
         (("vs_peers.py", "--rounds", "1", "--peers", "dynamo,dynamo-kv,dynamo-files", "--python",
           "/usr/bin/python3.11"),)),
    Step("virtual-requests", "wall time and peak memory of `disagg run` against requests",
         (("memory.py", "--requests", "1000", "10000", "100000", "1000000"),),
         (("memory.py", "--requests", "1000", "10000"),)),
    Step("virtual-units", "virtual engine wall time and peak memory against units",
         (("virtual_speed.py", "--markdown", "--only", "units", "--max-units", "256"),),
         (("virtual_speed.py", "--markdown", "--only", "units", "--max-units", "16"),)),
    Step("messages", "messages and actor calls per request by type",
         (("messages_per_request.py", "--markdown", "--duration", "1000"),
          ("messages_per_request.py", "--markdown", "--engine", "ray", "--duration", "30"),
          ("messages_per_request.py", "--markdown", "--engine", "ray", "--duration", "30",
           "--no-one-control-actor"),
          ("messages_per_request.py", "--markdown", "--engine", "ray", "--duration", "15",
           *_SIZED),
          ("messages_per_request.py", "--markdown", "--engine", "ray", "--duration", "15",
           *_SIZED, "--no-one-control-actor")),
         (("messages_per_request.py", "--markdown", "--duration", "100"),
          ("messages_per_request.py", "--markdown", "--engine", "ray", "--duration", "5"))),
    Step("fidelity", "ray engine against the virtual engine at dilations 4, 2, 1, 0.5",
         (("ray_fidelity.py", "--markdown", "--only", "fidelity", "--duration", "10"),
          ("ray_fidelity.py", "--markdown", "--only", "fidelity", "--duration", "10",
           *_SEPARATE_CONTROL)),
         (("ray_fidelity.py", "--markdown", "--only", "fidelity", "--quick"),)),
    Step("largest", "the largest faithful cluster at dilation 1 and 4, one machine and more",
         (("ray_fidelity.py", "--markdown", "--only", "largest,cluster", "--duration", "10"),),
         (("ray_fidelity.py", "--markdown", "--only", "largest", "--quick"),)),
    Step("unit-memory", "memory per unit with several units per actor",
         (("cluster_scale.py", "--markdown"),),
         (("cluster_scale.py", "--markdown"),)),
)


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``name``'s markers replaced by ``body``; ValueError if the
    markers are missing, repeated or out of order."""
    begin, end = f"<!-- BEGIN generated:{name} -->", f"<!-- END generated:{name} -->"
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"docs/performance.md needs exactly one {begin} and one {end}")
    i, j = text.index(begin) + len(begin), text.index(end)
    if j < i:
        raise ValueError(f"{end} comes before {begin}")
    return text[:i] + "\n" + body.strip("\n") + "\n" + text[j:]


def models_hash(repo: Path = REPO) -> str:
    """SHA-256 (first 12 hex digits) over the catalog and the performance models, every
    ``cluster/hardware/*.py`` file: what a generated block's numbers were measured with."""
    h = hashlib.sha256()
    for path in sorted(repo.glob("cluster/hardware/*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The machine a block was measured on: its cores and their model name (``/proc/cpuinfo``;
    the platform's processor name where there is none). Blocks from different machines differ
    by more than blocks of different commits on one."""
    name = ""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count() or 1} cores of {name or platform.processor() or 'an unknown CPU'}"


def measured(commit: str, models: str, load_before: float, load_after: float) -> str:
    """When, on which commit and machine, with which models and under what load a block was
    measured: the tail of every engine block's stamp (this script's and regen_docs.py's)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"on {when} at commit `{commit}` on {machine()}; models `{models}`; 1-minute load "
            f"average {load_before:.1f} before, {load_after:.1f} after")


def stamp(commit: str, load_before: float, load_after: float, quick: bool) -> str:
    """The line under each generated block: when, where (the commit, the machine), with which
    models (benchmarks/regen_docs.py) and under what load it was measured."""
    kind = "quick run (--quick)" if quick else "full run"
    return (f"*Generated by `python benchmarks/performance.py` ({kind}) "
            f"{measured(commit, models_hash(), load_before, load_after)}.*")


def commit_id() -> str:
    """The checked-out commit (with ``+`` when the tree has uncommitted changes)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                          capture_output=True, check=False).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           text=True, capture_output=True, check=False).stdout.strip()
    return head + ("+" if dirty else "")


def run_step(step: Step, quick: bool) -> str | None:
    """The step's markdown (its commands' outputs in order), or None if any command failed."""
    parts = []
    for args in step.quick if quick else step.commands:
        cmd = [sys.executable, str(BENCH / args[0]), *args[1:]]
        print(f"[{step.name}] python benchmarks/{' '.join(args)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE, check=False)
        print(f"[{step.name}] exit {done.returncode} after {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
        if done.returncode != 0 or not done.stdout.strip():
            return None
        parts.append(f"`python benchmarks/{' '.join(_quoted(a) for a in args)}`:\n\n"
                     + without_ray_logs(done.stdout).strip("\n"))
    return "\n\n".join(parts)


def without_ray_logs(text: str) -> str:
    """``text`` without the log lines Ray's workers forward to the driver's stdout (coloured,
    prefixed ``(raylet)`` or ``(ComponentHost pid=...)``), and with a blank line before every
    table that follows a line of text (markdown needs it)."""
    out: list[str] = []
    for line in text.splitlines():
        if "\x1b[" in line or line.startswith("(raylet)") or (
                line.startswith("(") and " pid=" in line.split(")")[0]):
            continue
        if line.startswith("|") and out and out[-1].strip() and not out[-1].startswith("|"):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _quoted(arg: str) -> str:
    return arg if arg and " " not in arg else repr(arg)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` through a temporary sibling (never a half-written doc)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps and write their tables into the doc; 1 if any step failed."""
    names = [s.name for s in STEPS]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma-separated steps: {','.join(names)}")
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes, not most of an hour)")
    ap.add_argument("--doc", type=Path, default=DOC, help="the markdown file to update")
    ap.add_argument("--list", action="store_true", help="print the steps and their commands")
    args = ap.parse_args(argv)
    chosen = names if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"--only: {unknown[0]!r} is not a step; allowed: {', '.join(names)}", file=sys.stderr)
        return 2
    if args.list:
        for s in STEPS:
            print(f"{s.name:18} {s.what}")
            for args in s.commands:
                print(f"{'':18} python benchmarks/{' '.join(_quoted(a) for a in args)}")
        return 0
    if not args.doc.is_file():
        print(f"--doc: {args.doc} is not a file", file=sys.stderr)
        return 2
    text = args.doc.read_text(encoding="utf-8")
    for name in chosen:  # check every marker before spending half an hour
        try:
            replace_block(text, name, "")
        except ValueError as e:
            print(f"--doc: {e}", file=sys.stderr)
            return 2
    failed = []
    commit = commit_id()
    for step in (s for s in STEPS if s.name in chosen):
        before = os.getloadavg()[0]
        body = run_step(step, args.quick)
        if body is None:
            failed.append(step.name)
            continue
        # read again: the doc may have been edited by hand while the step ran
        text = replace_block(args.doc.read_text(encoding="utf-8"), step.name,
                             body + "\n\n" + stamp(commit, before, os.getloadavg()[0], args.quick))
        write_atomically(args.doc, text)  # after every step: an interrupted run keeps the rest
    if failed:
        print(f"failed steps (their tables were left as they were): {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""disagg's virtual engine against peer simulators on the same trace, whole process, interleaved.

    python benchmarks/vs_peers.py                 # install the peers if needed, 3 rounds
    python benchmarks/vs_peers.py --rounds 1 --cache /tmp/peers

Each peer lives in its own virtual environment under ``--cache`` (``python -m venv`` and ``pip
install`` of a pinned version from the registry pip is configured for), made once and reused.
Every side replays the Mooncake conversation trace (experiments/traces/, 12,031 requests over
3,537 s, timestamps honoured) on a disaggregated configuration where the peer has one:

- **disagg**: ``disagg run experiments/mooncake_conv.toml --engine virtual --no-live`` on the whole
  trace (8 prefill units, 2 decode units, prefix-aware router, prefix caching);
- **dynamo**: ai-dynamo's offline trace replay, ``python -m dynamo.replay TRACE --replay-mode
  offline`` with 8 prefill and 2 decode mocker workers (its default timing model);
- **vidur**: ``python -m vidur.main`` with the trace converted to its replay CSV, 10 replicas of
  4 GPUs (vidur has no prefill/decode split: colocated replicas).

Rounds are interleaved (disagg, peer, disagg, peer, ...) so a change of machine load hits both
sides alike; each process is timed whole (start-up included) with its resource usage from
``os.wait4``. A peer that cannot be installed or run here gets a row saying why, never a number.
The table (markdown) goes to stdout; ``benchmarks/performance.py --only vs-peers`` writes it into
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "experiments" / "traces" / "mooncake_conversation_trace.jsonl"
EXPERIMENT = REPO / "experiments" / "mooncake_conv.toml"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "disagg-peers"


@dataclass(frozen=True)
class Timing:
    """One whole child process: wall seconds, CPU seconds (user + system, its children
    included) and peak resident memory in MiB; ``error`` is its last stderr line on failure."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    error: str | None = None


@dataclass(frozen=True)
class Peer:
    """A peer simulator: its pip requirement, the module that must import, the configuration
    it runs and the command (argv after the venv's python) for one replay of ``trace``."""

    name: str
    requirement: str
    module: str
    configuration: str
    command: Callable[[Path, Path], list[str]]  # (trace, scratch dir) -> argv after python


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


def disagg_command(trace: Path, scratch: Path) -> list[str]:
    """Arguments of ``disagg run`` for the whole trace on the virtual engine (results to a scratch folder)."""
    del trace  # the experiment names the shipped copy of the same trace
    return ["run", str(EXPERIMENT), "--engine", "virtual",
            "--no-live", "--force", "--out", str(scratch / "disagg-out"),
            "--set", "workload.start_s=0", "--set", "workload.end_s=4000",
            "--set", "experiment.duration_s=4000"]


def dynamo_command(trace: Path, scratch: Path) -> list[str]:
    """ai-dynamo's offline replay, disaggregated: 8 prefill and 2 decode mocker workers."""
    return ["-m", "dynamo.replay", str(trace), "--replay-mode", "offline",
            "--router-mode", "round_robin", "--num-prefill-workers", "8",
            "--num-decode-workers", "2",
            "--prefill-engine-args", json.dumps({"block_size": 512, "worker_type": "prefill"}),
            "--decode-engine-args", json.dumps({"block_size": 512, "worker_type": "decode"}),
            "--report-json", str(scratch / "dynamo-report.json")]


_VIDUR_DATE = "2023-08-21"  # vidur replays the rows of one date


def vidur_trace(trace: Path, scratch: Path) -> Path:
    """The trace as vidur's replay CSV (arrival s, prompt and output tokens), written once."""
    out = scratch / "mooncake_vidur.csv"
    if not out.exists():
        rows = ["Date,Time,PromptTokenCount,CompletionTokenCount"]  # vidur's splitwise layout
        with trace.open(encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                rows.append(f"{_VIDUR_DATE},{r['timestamp'] / 1000:.3f},{r['input_length']},"
                            f"{max(1, r['output_length'])}")
        out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def vidur_command(trace: Path, scratch: Path) -> list[str]:
    """vidur's simulator on the converted trace: 10 replicas of Llama-3-70B on 4 A100s each."""
    return ["-m", "vidur.main",
            "--replica_config_model_name", "meta-llama/Llama-3-70B",
            "--replica_config_device", "a100",
            "--replica_config_tensor_parallel_size", "4",
            "--cluster_config_num_replicas", "10",
            "--request_generator_config_type", "trace_replay",
            "--trace_request_generator_config_trace_file", str(vidur_trace(trace, scratch)),
            "--trace_request_generator_config_date", _VIDUR_DATE,
            "--trace_request_generator_config_prefill_scale_factor", "1",
            "--trace_request_generator_config_decode_scale_factor", "1",
            "--trace_request_generator_config_time_scale_factor", "1",
            "--trace_request_generator_config_max_tokens", "131072",
            "--metrics_config_output_dir", str(scratch / "vidur-out")]


PEERS = (
    Peer("dynamo", "ai-dynamo==1.6.1", "dynamo.replay",
         "offline replay, 8 prefill + 2 decode mocker workers, round robin", dynamo_command),
    Peer("vidur", "vidur==0.0.26", "vidur.main",
         "10 colocated replicas (no prefill/decode split in vidur)", vidur_command),
)


def install(peer: Peer, cache: Path) -> tuple[Path | None, str]:
    """The peer's venv python (made and filled once), or None and the reason it is not usable."""
    return peer_venv(peer.name, peer.requirement, peer.module, cache)


def peer_venv(name: str, requirement: str, module: str,
              cache: Path = DEFAULT_CACHE) -> tuple[Path | None, str]:
    """The python of the venv ``cache/name`` with ``requirement`` pip-installed (made and filled
    once, reused while ``module`` imports), or None and one line on why it is not usable.
    Never touches the environment running this script."""
    venv = cache / name
    python = venv / "bin" / "python"
    if not python.exists():
        cache.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                              text=True)
        if made.returncode != 0:
            return None, f"`python -m venv {venv}` failed: {install_reason(made.stderr)}"
    probe = subprocess.run([str(python), "-c", f"import importlib.util as u; "
                            f"assert u.find_spec({module!r})"], capture_output=True)
    if probe.returncode == 0:
        return python, ""
    log = cache / f"{name}-pip.log"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement],
                          capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        return None, f"`pip install {requirement}` failed: {install_reason(done.stderr)}"
    return python, ""


def install_reason(stderr: str) -> str:
    """One line on why pip failed (a wheel stub that needs an unreachable index, else the
    last error line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("The installation of") and "failed" in line:
            stub = line.removeprefix("The installation of ").removesuffix(" failed.")
            where = next((ln for ln in lines[i:i + 4] if "https://" in ln), "")
            return (f"{stub} is a placeholder that downloads its wheel from another index "
                    f"({where.split('https://')[1].split()[0].rstrip('.') if where else '?'}), "
                    f"not reachable here")
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1]


def median(timings: list[Timing], field: str) -> float:
    """The median of one field over successful runs."""
    return statistics.median(getattr(t, field) for t in timings)


def measure(peers: list[tuple[Peer, Path]], rounds: int, scratch: Path) -> dict[str, list[Timing]]:
    """Interleaved rounds: disagg, then each runnable peer, ``rounds`` times."""
    cli = str(Path(sys.executable).with_name("disagg"))  # the console script, as a user runs it
    sides: list[tuple[str, list[str]]] = [("disagg", [cli, *disagg_command(TRACE, scratch)])]
    sides += [(p.name, [str(py), *p.command(TRACE, scratch)]) for p, py in peers]
    out: dict[str, list[Timing]] = {name: [] for name, _ in sides}
    for r in range(rounds):
        for name, argv in sides:
            t = timed(argv, scratch)
            out[name].append(t)
            print(f"round {r + 1} {name}: wall {t.wall_s:.2f} s, CPU {t.cpu_s:.2f} s"
                  + (f", {t.error}" if t.error else ""), file=sys.stderr, flush=True)
    return out


def table(results: dict[str, list[Timing]], skipped: dict[str, str], rounds: int) -> str:
    """The markdown ratio table: each peer's median wall and CPU against disagg's."""
    d = results["disagg"]
    head = ("| simulator | configuration | wall s (median) | CPU s | peak MiB | "
            "disagg speed vs it (its wall / disagg wall) | note |\n"
            "|---|---|---:|---:|---:|---:|---|")
    rows = [head]
    disagg_failed = next((t.error for t in d if t.error), None)
    rows.append(f"| disagg {version()} (virtual engine) | 8 prefill + 2 decode, prefix-aware | "
                f"{median(d, 'wall_s'):.2f} | {median(d, 'cpu_s'):.2f} | "
                f"{median(d, 'peak_mib'):.0f} | 1.00 | {disagg_failed or ''} |")
    for peer in PEERS:
        if peer.name in skipped:
            rows.append(f"| {peer.requirement} | {peer.configuration} | – | – | – | – | "
                        f"not measured: {skipped[peer.name]} |")
            continue
        ts = results[peer.name]
        failed = next((t.error for t in ts if t.error), None)
        if failed:
            rows.append(f"| {peer.requirement} | {peer.configuration} | – | – | – | – | "
                        f"did not run here: {failed.replace('|', '/')} |")
            continue
        ratio = median(ts, "wall_s") / median(d, "wall_s")
        rows.append(f"| {peer.requirement} | {peer.configuration} | {median(ts, 'wall_s'):.2f} | "
                    f"{median(ts, 'cpu_s'):.2f} | {median(ts, 'peak_mib'):.0f} | "
                    f"**{ratio:.2f} ×** | |")
    return (f"Mooncake conversation trace, 12,031 requests, timestamps honoured; whole process "
            f"(start-up included), median of {rounds} interleaved rounds.\n\n" + "\n".join(rows))


def version() -> str:
    """The disagg package version under test."""
    from importlib.metadata import version as v
    return v("disagg")


def main(argv: list[str] | None = None) -> int:
    """Install the peers (once), run every side interleaved, print the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="peers' venvs live here")
    ap.add_argument("--peers", default=",".join(p.name for p in PEERS),
                    help="comma-separated peers to include")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        print(f"--rounds: {args.rounds} is not allowed; at least 1", file=sys.stderr)
        return 2
    chosen = {n.strip() for n in args.peers.split(",") if n.strip()}
    args.cache.mkdir(parents=True, exist_ok=True)
    runnable, skipped = [], {}
    for peer in PEERS:
        if peer.name not in chosen:
            skipped[peer.name] = "left out (--peers)"
            continue
        python, reason = install(peer, args.cache)
        if python is None:
            skipped[peer.name] = reason
        else:
            runnable.append((peer, python))
    with tempfile.TemporaryDirectory(prefix="vs-peers-") as tmp:
        results = measure(runnable, args.rounds, Path(tmp))
    print(table(results, skipped, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""AIPerf (NVIDIA's benchmark client) against ``disagg serve``: the client's figures beside the
emulator's own ``summary.json``, for docs/serve.md's section "A real benchmark client: AIPerf".

    python benchmarks/aiperf_vs_summary.py [--cache DIR]

Installs ``aiperf==0.13.0`` once into its own venv under ``--cache`` (benchmarks/peer_venvs.py's
``peer_venv``; never into this environment), writes the word-level tokenizer of
benchmarks/word_tokenizer.py there, then for each run (A: 40 requests, 2 in flight; B: 30
requests, 1 in flight) starts ``disagg serve experiments/quickstart.toml`` (dilation 1, a free
port, a fresh ``--out`` in a temporary folder), polls ``/v1/models`` until it answers, runs
``aiperf profile`` (streaming chat, 1,000-token prompts, 200 output tokens, ``ignore_eos``),
stops the server with SIGINT so it writes its results, and reads AIPerf's JSON export and
disagg's ``summary.json``. The Markdown table goes to stdout (progress to stderr);
``python benchmarks/regen_docs.py --only aiperf`` writes it into docs/serve.md. If AIPerf cannot
be installed or run: one line on stderr, exit 1, no table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# sibling modules (the benchmarks run as scripts from this folder)
from aiperf_figures import BenchError, Figures, client_figures, server_figures, table
from peer_venvs import DEFAULT_CACHE, peer_venv

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "experiments" / "quickstart.toml"
REQUIREMENT = "aiperf==0.13.0"
MODEL = "llama-3.1-70b"  # the quickstart's served model name
EXPORT = "profile_export_aiperf.json"  # AIPerf 0.13's summary export in --output-artifact-dir
READY_TIMEOUT_S = 300.0  # bounded wait for the server (Ray start on a loaded machine)
STOP_TIMEOUT_S = 300.0  # bounded wait for the server to write its results after SIGINT
PROFILE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Run:
    """One AIPerf run against a fresh server: its label, request count and concurrency."""

    label: str
    requests: int
    concurrency: int


RUNS = (Run("A", 40, 2), Run("B", 30, 1))


def say(text: str) -> None:
    """Progress, to stderr."""
    print(f"[aiperf] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port free on loopback now (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], how: int, timeout_s: float) -> bool:
    """Send ``how`` to the process group of ``proc`` (a session we started); True if it ended
    within ``timeout_s``, else it and its group are killed and False. Either way, whatever of
    its group is left (a child it did not end) gets SIGKILL: nothing we started runs on."""
    if proc.poll() is None:
        os.killpg(proc.pid, how)
    try:
        proc.wait(timeout_s)
        ended = True
    except subprocess.TimeoutExpired:
        ended = False
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader while members remain
    except ProcessLookupError:
        pass  # the group is empty: the usual case
    proc.wait()
    return ended


def last_line(log: Path) -> str:
    """The last non-empty line of a log file (why a child failed), and where the log is."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return f"{lines[-1] if lines else 'no output'} (log: {log})"


def wait_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll ``url`` (bounded: ``READY_TIMEOUT_S``) until it answers 200."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"disagg serve exited {server.returncode}: {last_line(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)  # a poll interval, bounded by the deadline
    raise BenchError(f"disagg serve did not answer {url} within {READY_TIMEOUT_S:.0f} s")


def profile_argv(aiperf: Path, run: Run, port: int, tokenizer: Path, out: Path) -> list[str]:
    """``aiperf profile`` as docs/serve.md shows it, for ``run``."""
    return [str(aiperf), "profile", "--model", MODEL, "--url", f"http://127.0.0.1:{port}",
            "--endpoint-type", "chat", "--streaming", "--tokenizer", str(tokenizer),
            "--synthetic-input-tokens-mean", "1000", "--synthetic-input-tokens-stddev", "0",
            "--output-tokens-mean", "200", "--extra-inputs", "ignore_eos:true",
            "--request-count", str(run.requests), "--concurrency", str(run.concurrency),
            "--random-seed", "1", "--ui-type", "none", "--output-artifact-dir", str(out)]


def start_server(port: int, results: Path, log: Path) -> subprocess.Popen[bytes]:
    """``disagg serve`` on the quickstart (its own session, an embedded Ray), output to ``log``."""
    disagg = Path(sys.executable).with_name("disagg")  # the console script, as a user runs it
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    argv = [str(disagg), "--debug", "serve", str(QUICKSTART), "--port", str(port),
            "--dilation", "1", "--out", str(results)]
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_client(argv: list[str], cwd: Path, log: Path) -> None:
    """Run ``aiperf profile`` to its end (bounded), output to ``log``; BenchError if it fails.
    Whatever of its processes is left afterwards is ended."""
    with log.open("wb") as out:
        client = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        code = client.wait(PROFILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"aiperf profile took over {PROFILE_TIMEOUT_S:.0f} s") from None
    finally:
        stop_group(client, signal.SIGTERM, 30)
    if code != 0:
        raise BenchError(f"aiperf profile exited {code}: {last_line(log)}")


def one_run(aiperf: Path, run: Run, tokenizer: Path, scratch: Path,
            logs: Path) -> tuple[Figures, Figures]:
    """Serve the quickstart, run AIPerf against it, stop it; (client, server) figures. The two
    processes' logs go to ``logs`` (kept, for a failure's cause)."""
    port, results, artifacts = free_port(), scratch / f"results-{run.label}", scratch / run.label
    server_log, client_log = logs / f"serve-{run.label}.log", logs / f"aiperf-{run.label}.log"
    say(f"run {run.label}: disagg serve on port {port}, load average {os.getloadavg()[0]:.1f}")
    server = start_server(port, results, server_log)
    try:
        wait_ready(server, f"http://127.0.0.1:{port}/v1/models", server_log)
        say(f"run {run.label}: aiperf profile, {run.requests} requests, "
            f"{run.concurrency} in flight")
        run_client(profile_argv(aiperf, run, port, tokenizer, artifacts), scratch, client_log)
    finally:
        stopped = stop_group(server, signal.SIGINT, STOP_TIMEOUT_S)
    if not stopped:
        raise BenchError(f"disagg serve did not stop within {STOP_TIMEOUT_S:.0f} s of SIGINT "
                         f"(killed): {last_line(server_log)}")
    exports = sorted(artifacts.rglob(EXPORT))
    if not exports:
        raise BenchError(f"aiperf wrote no {EXPORT} under {artifacts}")
    summary = results / "summary.json"
    if not summary.is_file():
        raise BenchError(f"disagg serve wrote no {summary}: {last_line(server_log)}")
    return (client_figures(json.loads(exports[0].read_text(encoding="utf-8"))),
            server_figures(json.loads(summary.read_text(encoding="utf-8"))))


def write_tokenizer(python: Path, out: Path) -> Path:
    """benchmarks/word_tokenizer.py run in AIPerf's venv, with disagg's words passed as JSON."""
    from disagg.experiments.serve.protocol import WORDS
    words = out.with_suffix(".json")
    words.write_text(json.dumps(list(WORDS)), encoding="utf-8")
    done = subprocess.run([str(python), str(REPO / "benchmarks" / "word_tokenizer.py"), str(out),
                           str(words)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()] or ["no output"]
        raise BenchError(f"word_tokenizer.py failed in AIPerf's venv: {lines[-1].strip()}")
    return out


def measure(cache: Path) -> str:
    """Install AIPerf (once), run A and B, and return the caption and the table."""
    say(f"AIPerf venv: {cache / 'aiperf'} ({REQUIREMENT})")
    python, reason = peer_venv("aiperf", REQUIREMENT, "aiperf", cache)
    if python is None:
        raise BenchError(f"AIPerf cannot be installed: {reason}")
    columns: list[tuple[str, Figures]] = []
    loads = []
    logs = cache / "aiperf-logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiperf-vs-summary-") as tmp:
        scratch = Path(tmp)
        tokenizer = write_tokenizer(python, scratch / "tokenizer")
        for run in RUNS:
            loads.append(os.getloadavg()[0])
            client, server = one_run(python.with_name("aiperf"), run, tokenizer, scratch, logs)
            columns += [(f"{run.label}: AIPerf (client)", client),
                        (f"{run.label}: disagg `summary.json`", server)]
    runs = "; ".join(f"run {r.label}: {r.requests} requests, {r.concurrency} in flight "
                     f"(load average {load:.1f} at its start)" for r, load in zip(RUNS, loads,
                                                                                  strict=True))
    return (f"AIPerf {REQUIREMENT.split('==')[1]}, quickstart cluster, dilation 1, 1,000-token "
            f"prompts (AIPerf's count), 200 output tokens per request, {os.cpu_count()} cores; "
            f"{runs}.\n\n" + table(columns))


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table; 1 with one line on stderr if anything could not run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="AIPerf's venv lives here")
    args = ap.parse_args(argv)
    try:
        text = measure(args.cache)
    except (BenchError, OSError) as e:  # OSError: a folder or a program we could not use
        print(f"aiperf_vs_summary: {e}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

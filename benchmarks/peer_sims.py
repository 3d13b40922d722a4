"""The peer simulators of benchmarks/vs_peers.py: for each, its pinned requirement, the
configuration it replays the Mooncake conversation trace on and what that models, the command of
one replay, the report it writes and how its completed requests are read, and how it is installed
(its own venv, benchmarks/peer_venvs.py, with a fallback where a dependency is a wheel stub).
Imported by vs_peers.py from its own folder (the benchmarks run as scripts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peer_venvs import Fallback, has_distribution, peer_venv

Completed = tuple[int, int]  # (requests completed, requests in the replay)


@dataclass(frozen=True)
class Peer:
    """A peer simulator: its pip requirement, the module that must import, the configuration
    it runs and what that models, the command (argv after the venv's python) for one replay
    of ``trace``, the report it leaves in the scratch folder and how to read its completed
    requests from it, and its install fallback if any."""

    name: str
    requirement: str
    module: str
    configuration: str
    models: str
    command: Callable[[Path, Path], list[str]]  # (trace, scratch dir) -> argv after python
    report: str | None = None  # file name in the scratch folder
    completed: Callable[[dict[str, Any]], Completed] | None = None
    fallback: Fallback | None = None
    venv: str = ""  # the venv it runs from, if another peer's (default: its own, ``name``)
    label: str = ""  # its name in the ratio line under the table (default: ``name``)


SAMPLE_INTERVAL_S = 0.5  # the timeseries grid of disagg's run (``[output] sample_interval_s``)

# ai-dynamo 1.6.1's offline replay through its Python API (1.6.1 has no `python -m dynamo.replay`):
# argv[1] the trace, argv[2] where the report's summary goes (JSON), argv[3] the router mode;
# if given, argv[4] where each request's record goes (JSON lines, `report_jsonl_path`), argv[5]
# where its timeseries goes (JSON lines, a sample of every worker's state each argv[6] ms,
# `TelemetryOptions`): by default the replay keeps only its summary. Its log level is set to
# warnings (unless DYN_LOG says otherwise): its KV router logs every routing decision at INFO on
# stderr, twice a request, which disagg's runs do not do.
DYNAMO_DRIVER = """\
import json, os, sys
os.environ.setdefault("DYN_LOG", "warn")
from dynamo.replay import TelemetryOptions, run_trace_replay
files = {} if len(sys.argv) < 5 else {"report_jsonl_path": sys.argv[4], "telemetry_options":
    TelemetryOptions(sample_interval_ms=float(sys.argv[6]), jsonl_path=sys.argv[5])}
report = run_trace_replay(sys.argv[1], num_prefill_workers=8, num_decode_workers=2,
    router_mode=sys.argv[3],
    prefill_engine_args={"engine": {"block_size": 512, "worker_type": "prefill"}},
    decode_engine_args={"engine": {"block_size": 512, "worker_type": "decode"}}, **files)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(report.summary, f, default=str)
"""


def dynamo_command(trace: Path, scratch: Path) -> list[str]:
    """ai-dynamo's offline replay, disaggregated: 8 prefill and 2 decode mocker workers behind
    its default router (round robin)."""
    return ["-c", DYNAMO_DRIVER, str(trace), str(scratch / "dynamo-report.json"), "round_robin"]


def dynamo_kv_command(trace: Path, scratch: Path) -> list[str]:
    """The same replay behind Dynamo's KV-aware router (``kv_router``: each request to the
    worker whose cached blocks and load make it cheapest), the counterpart of disagg's
    ``prefix_aware`` router."""
    return ["-c", DYNAMO_DRIVER, str(trace), str(scratch / "dynamo-kv-report.json"), "kv_router"]


def dynamo_files_command(trace: Path, scratch: Path) -> list[str]:
    """The round-robin replay writing what disagg's run writes besides its summary: each
    request's record (``report_jsonl_path``, a JSON line per request, as ``requests.parquet``
    has a row per request) and a timeseries of every worker's state on disagg's default grid
    (``TelemetryOptions``, a JSON line per :data:`SAMPLE_INTERVAL_S`, as ``timeseries.parquet``
    has a row per unit and bin)."""
    return ["-c", DYNAMO_DRIVER, str(trace), str(scratch / "dynamo-files-report.json"),
            "round_robin", str(scratch / "dynamo-requests.jsonl"),
            str(scratch / "dynamo-timeseries.jsonl"), f"{SAMPLE_INTERVAL_S * 1000:g}"]


def dynamo_completed(summary: dict[str, Any]) -> Completed:
    """Requests completed and replayed, from the replay report's summary."""
    return int(summary["completed_requests"]), int(summary["num_requests"])


_VIDUR_DATE = "2023-08-21"  # vidur replays the rows of one date


def vidur_trace(trace: Path, scratch: Path) -> Path:
    """The trace as vidur's replay CSV (arrival s, prompt and output tokens), written once per
    trace file."""
    out = scratch / f"{trace.stem}_vidur.csv"
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


_DYNAMO_WITHOUT_STUB = Fallback(
    stub="aisimulate",
    # ai-dynamo 1.6.1's requirements less aisimulate (the stub), kubernetes and transformers
    # (neither imported by the offline replay); ai-dynamo-runtime holds the Rust replay core
    deps=("ai-dynamo-runtime==1.6.1", "aiohttp>=3.14.3,<4", "certifi>=2026.10.19",
          "msgspec>=0.19", "prometheus-client>=0.23.1,<1", "pyzmq>=26", "redis>=6.2,<9", "tqdm",
          "typing-extensions>=4.10", "zstandard>=0.23,<1"),
    no_deps="ai-dynamo==1.6.1",
    note="replay core installed without aisimulate, which the offline replay does not import")

PEERS = (
    Peer("dynamo", "ai-dynamo==1.6.1", "dynamo.replay",
         "`run_trace_replay`: 8 prefill + 2 decode mocker workers, round robin, 512-token blocks",
         "the mocker's timing model (default engine args), round-robin routing, KV block reuse "
         "in each mocker", dynamo_command, "dynamo-report.json", dynamo_completed,
         _DYNAMO_WITHOUT_STUB, label="Dynamo"),
    Peer("dynamo-kv", "ai-dynamo==1.6.1", "dynamo.replay",
         "`run_trace_replay`: 8 prefill + 2 decode mocker workers, KV router, 512-token blocks",
         "the mocker's timing model (default engine args), KV-aware routing (cached-block "
         "overlap and load, as disagg's `prefix_aware`), KV block reuse in each mocker",
         dynamo_kv_command, "dynamo-kv-report.json", dynamo_completed, _DYNAMO_WITHOUT_STUB,
         venv="dynamo", label="Dynamo (KV router)"),
    Peer("dynamo-files", "ai-dynamo==1.6.1", "dynamo.replay",
         "`run_trace_replay`: 8 prefill + 2 decode mocker workers, round robin, 512-token "
         "blocks, its per-request records and timeseries written",
         "as the round-robin row, and what disagg's run writes besides its summary: a record "
         "per request (`report_jsonl_path`: arrival, first and last token, TTFT, ITL, lengths, "
         "reused tokens, workers) and every worker's state each 0.5 s (`TelemetryOptions`: "
         "blocks, running and waiting requests), as JSON lines",
         dynamo_files_command, "dynamo-files-report.json", dynamo_completed,
         _DYNAMO_WITHOUT_STUB, venv="dynamo", label="Dynamo (records and timeseries written)"),
    Peer("vidur", "vidur==0.0.26", "vidur.main",
         "10 colocated replicas (no prefill/decode split in vidur)",
         "execution times predicted from GPU profiling data sets it downloads from the "
         "Hugging Face Hub", vidur_command),
)


def install(peer: Peer, cache: Path, interpreter: Path | None = None
            ) -> tuple[Path | None, str]:
    """The peer's venv python (made and filled once, from ``interpreter``: default, the one
    running this script) and a note on how it was installed ('' for a plain install), or None
    and the reason it is not usable."""
    python, reason = peer_venv(peer.venv or peer.name, peer.requirement, peer.module, cache,
                               peer.fallback, interpreter)
    if python is None or peer.fallback is None:
        return python, reason
    return python, ("" if has_distribution(python, peer.fallback.stub) else peer.fallback.note)

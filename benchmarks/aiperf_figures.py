"""AIPerf's figures and disagg's beside them, for benchmarks/aiperf_vs_summary.py: the reading
of AIPerf's JSON export (``profile_export_aiperf.json``) and of disagg's ``summary.json`` into one
shape (latencies in milliseconds), and the Markdown table of docs/serve.md's block ``aiperf``.
Imported by aiperf_vs_summary.py from its own folder (the benchmarks run as scripts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BenchError(RuntimeError):
    """AIPerf or the server could not be installed, started or run; the message is one line."""


@dataclass(frozen=True)
class Figures:
    """One side's figures of one run, latencies in milliseconds (None: not measured)."""

    requests: str
    output_tokens: float
    ttft: tuple[float, float, float]  # mean, p50, p99
    itl: tuple[float, float]  # mean, p50
    latency: tuple[float, float, float]  # mean, p50, p99
    lag: tuple[float, float] | None = None  # p50, p99 (the emulator's lateness)


_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def _metric(export: dict[str, Any], tag: str) -> dict[str, Any]:
    """One metric record of AIPerf's export (``{"unit": ..., "avg": ..., "p50": ...}``)."""
    if not isinstance(export.get(tag), dict):
        raise BenchError(f"AIPerf's export has no metric {tag!r} (keys: {sorted(export)})")
    return dict(export[tag])


def _ms(export: dict[str, Any], tag: str, stats: tuple[str, ...]) -> tuple[float, ...]:
    """``stats`` of the latency metric ``tag`` in milliseconds, from the unit it names."""
    m = _metric(export, tag)
    unit = m.get("unit")
    if unit not in _TO_MS:
        raise BenchError(f"AIPerf's {tag} has unit {unit!r}; known: {', '.join(_TO_MS)}")
    return tuple(float(m[s]) * _TO_MS[unit] for s in stats)


def client_figures(export: dict[str, Any]) -> Figures:
    """AIPerf's figures from its JSON export (``profile_export_aiperf.json``)."""
    done = int(_metric(export, "request_count")["avg"])
    errors = int(export["error_request_count"]["avg"]) if isinstance(
        export.get("error_request_count"), dict) else 0
    ttft = _ms(export, "time_to_first_token", ("avg", "p50", "p99"))
    itl = _ms(export, "inter_token_latency", ("avg", "p50"))
    latency = _ms(export, "request_latency", ("avg", "p50", "p99"))
    return Figures(f"{done} completed, {errors} errors",
                   float(_metric(export, "output_sequence_length")["avg"]),
                   (ttft[0], ttft[1], ttft[2]), (itl[0], itl[1]),
                   (latency[0], latency[1], latency[2]))


def server_figures(summary: dict[str, Any]) -> Figures:
    """disagg's figures of the same run from its ``summary.json`` (already in milliseconds)."""
    done = int(summary["completed"])
    per_request = summary["total_output_tokens"] / done if done else 0.0
    return Figures(f"{summary['submitted']} submitted, {done} completed", per_request,
                   (summary["mean_ttft_ms"], summary["median_ttft_ms"], summary["p99_ttft_ms"]),
                   (summary["mean_itl_ms"], summary["median_itl_ms"]),
                   (summary["mean_e2el_ms"], summary["median_e2el_ms"], summary["p99_e2el_ms"]),
                   (summary["lag_p50_ms"], summary["lag_p99_ms"]))


def _cells(values: tuple[float, ...] | None, digits: int) -> str:
    return "—" if values is None else " / ".join(f"{v:.{digits}f}" for v in values)


def table(columns: list[tuple[str, Figures]]) -> str:
    """The Markdown table: one row per figure, one column per (heading, figures)."""
    rows = [("requests", [f.requests for _, f in columns]),
            ("output tokens per request", [f"{f.output_tokens:.0f}" for _, f in columns]),
            ("TTFT mean / p50 / p99 ms", [_cells(f.ttft, 1) for _, f in columns]),
            ("inter-token latency mean / p50 ms", [_cells(f.itl, 2) for _, f in columns]),
            ("request latency mean / p50 / p99 ms", [_cells(f.latency, 1) for _, f in columns]),
            ("emulator lag p50 / p99 ms", [_cells(f.lag, 1) for _, f in columns])]
    out = ["| figure | " + " | ".join(h for h, _ in columns) + " |",
           "|---" * (len(columns) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return "\n".join(out)

"""The table of benchmarks/vs_peers.py: each side's row from its timed rounds (median wall, CPU
and memory, requests completed, start-up and cost per further request) and each peer's wall
against disagg's, overall and round by round."""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

from peer_sims import PEERS, Completed

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "mooncake_conv.toml"
START_UP_S = 10.0  # the trace's first seconds: each side's start-up with a handful of requests
START_UP = "start-up"  # the suffix of a side's name for its runs on those seconds


@dataclass(frozen=True)
class Timing:
    """One whole child process: wall seconds, CPU seconds (user + system, its children
    included) and peak resident memory in MiB; ``error`` is its last stderr line on failure;
    ``completed`` what its own report says it completed (None without a report)."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    error: str | None = None
    completed: Completed | None = None


def median(timings: list[Timing], field: str) -> float:
    """The median of one field over successful runs."""
    return statistics.median(getattr(t, field) for t in timings)


def disagg_setup(experiment: Path = EXPERIMENT) -> tuple[str, str]:
    """disagg's configuration and what it models, read from the experiment file."""
    e = tomllib.loads(experiment.read_text(encoding="utf-8"))
    p, d, cache = e["prefill"], e["decode"], e.get("prefix_cache", {})
    configuration = (f"`{experiment.name}`: {p['units']} prefill ({p['chips_per_unit']} × "
                     f"{p['hardware']}) + {d['units']} decode ({d['chips_per_unit']} × "
                     f"{d['hardware']}) units, {e['model']['name']}")
    caching = (f"prefix caching ({cache.get('eviction', 'lru').upper()})"
               if cache.get("enabled") else "no prefix caching")
    models = (f"its performance models, router `{e['policies']['router']['name']}`, {caching}, "
              "KV transfers over the fabric")
    return configuration, models


def start_up_cells(results: dict[str, list[Timing]], name: str,
                   requests: tuple[int, int] | None) -> str:
    """``name``'s start-up cells: the median wall of its runs on the trace's first seconds
    (``requests[1]`` of the trace's ``requests[0]``) and the median wall of its whole run beyond
    that, per further request (µs); dashes where the start-up runs failed or were not made."""
    head = results.get(f"{name} {START_UP}")
    if requests is None or not head or any(t.error for t in head):
        return "– | –"
    whole, first = median(results[name], "wall_s"), median(head, "wall_s")
    return f"{first:.2f} | {(whole - first) / (requests[0] - requests[1]) * 1e6:.0f}"


def completed_cell(timings: list[Timing]) -> str:
    """The requests a side completed (every round's, when the rounds disagree)."""
    seen = sorted({t.completed for t in timings if t.completed is not None})
    return " / ".join(f"{c:,} of {n:,}" for c, n in seen) if seen else "–"


def pair_ratios(peer: list[Timing], disagg: list[Timing]) -> list[float]:
    """The peer's wall over disagg's, round by round (the runs of one round follow each other)."""
    return [p.wall_s / d.wall_s for p, d in zip(peer, disagg, strict=True)]


def table(results: dict[str, list[Timing]], skipped: dict[str, str], rounds: int,
          notes: dict[str, str] | None = None, interpreter: str = "",
          requests: tuple[int, int] | None = None) -> str:
    """The markdown table: each side's configuration, what it models, requests completed,
    median wall, CPU and memory, each peer's wall against disagg's (same rounds) and each
    side's start-up (:func:`start_up_cells`; ``requests``: the trace's and its first seconds';
    None: not counted, no start-up), under a line naming the ``interpreter`` every side ran on."""
    notes = notes or {}
    d = results["disagg"]
    rows = ["| simulator | configuration | what it models | requests completed | wall s (median) | "
            "CPU s | peak MiB | its wall / disagg wall | start-up wall s | wall µs per further "
            "request | note |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    configuration, models = disagg_setup()
    disagg_failed = next((t.error for t in d if t.error), None)
    rows.append(f"| disagg {version()} (virtual engine) | {configuration} | {models} | "
                f"{completed_cell(d)} | {median(d, 'wall_s'):.2f} | {median(d, 'cpu_s'):.2f} | "
                f"{median(d, 'peak_mib'):.0f} | 1.00 | "
                f"{start_up_cells(results, 'disagg', requests)} | {disagg_failed or ''} |")
    ratios = []
    for peer in PEERS:
        head = f"| {peer.requirement} | {peer.configuration} | {peer.models} |"
        if peer.name in skipped:
            rows.append(f"{head} – | – | – | – | – | – | – | not measured: "
                        f"{skipped[peer.name]} |")
            continue
        ts = results[peer.name]
        failed = next((t.error for t in ts if t.error), None)
        if failed:
            rows.append(f"{head} – | – | – | – | – | – | – | did not run here: "
                        f"{failed.replace('|', '/')} |")
            continue
        ratio = median(ts, "wall_s") / median(d, "wall_s")
        pairs = pair_ratios(ts, d)
        ratios.append(f"**{peer.label or peer.name} wall / disagg wall: {ratio:.2f}** (medians "
                      f"of the same {rounds} interleaved rounds; round by round "
                      f"{min(pairs):.2f} to {max(pairs):.2f}, median {statistics.median(pairs):.2f})")
        rows.append(f"{head} {completed_cell(ts)} | {median(ts, 'wall_s'):.2f} | "
                    f"{median(ts, 'cpu_s'):.2f} | {median(ts, 'peak_mib'):.0f} | "
                    f"**{ratio:.2f} ×** | {start_up_cells(results, peer.name, requests)} | "
                    f"{notes.get(peer.name, '')} |")
    after = (f"\n\n{'; '.join(ratios)}. Above 1 means disagg's whole run is the faster one."
             if ratios else "")
    on = f" Every side on {interpreter}." if interpreter else ""
    start_up = (f" Start-up: the same command on the trace's first {START_UP_S:g} s "
                f"({requests[1]} requests), median wall; per further request: the whole run's "
                f"median wall less that, over the other {requests[0] - requests[1]:,} requests."
                if requests else "")
    counted = f" {requests[0]:,} requests," if requests else ""
    return (f"Mooncake conversation trace,{counted} timestamps honoured; whole "
            f"process (start-up included), median of {rounds} interleaved rounds.{on}{start_up}"
            "\n\n" + "\n".join(rows) + after)


def version() -> str:
    """The disagg package version under test."""
    from importlib.metadata import version as v
    return v("disagg")

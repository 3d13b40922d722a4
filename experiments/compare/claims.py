"""The AWS claims line-up behind docs/claims.md: five clusters at equal cost (or racks), on the Azure
conversation trace or 60 s of Mooncake's, across request rates and CS-3 concurrency assumptions.

Clusters: ``experiments/aws_cerebras_vs_gpu.toml`` (a: Trainium2 + CS-3, the reference and the
workload) and ``experiments/aws_vs_gpu/*.toml`` (b: Trainium3 + CS-3, c: 8 x H100 colocated,
d: H100 prefill + H100 decode, e: 8 x B200 colocated), lined up by
``experiments/compare/lineup.py`` (same request stream; units scaled to the reference's budget).
A rate rescales the trace (from the Azure trace's busiest half hour on, or from the start of the
Mooncake subset) to that mean rate, and arrivals run for ``duration_s``: a sustained load of
about rate x duration requests with the trace's own burstiness and lengths.

CS-3 concurrency assumption (docs/calibration.md, "Beyond one user"): the wafer pipeline's
latency floor grows as ``max(1, streams / concurrency_free_streams) ** concurrency_exponent``;
this module sweeps the exponent of every CS-3 pool — 0 (flat: streams interleave for free),
0.5 (the catalog default: per-user speed ~ 1 / sqrt(streams)), 1 (streams share the pipeline's
single-user speed). Figures per run: per-user output tok/s (mean of 1 / TPOT), TTFT p50 / p99,
goodput (req/s meeting both SLOs), SLO attainment, $/M output
tokens, J / output token, and "high-speed" output tok/s: tokens of requests served at >= 500
tok/s per user, per emu second.

    python -m disagg.experiments.compare.claims [--trace azure|mooncake] [--equal cost|racks]
        [--rates 7,14,28] [--exponents 0,0.5,1] [--duration 60] [--prefill-units N]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disagg.cluster.config import Experiment, load_experiment
from disagg.experiments.compare.lineup import line_up
from disagg.experiments.compare.runs import PolicyChoice, variant
from disagg.experiments.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "aws_cerebras_vs_gpu.toml", *(ROOT / "aws_vs_gpu" / f"{n}.toml" for n in (
    "trn3_cs3", "h100_colocated", "h100_disagg", "b200_colocated"))]
MOONCAKE = {"kind": "trace", "path": str(ROOT / "traces" / "mooncake_conversation_trace.jsonl"),
            "format": "mooncake", "start_s": 0.0, "end_s": 600.0, "speedup": 1.0}  # first 10 min
HIGH_SPEED_TOK_S = 500.0  # per-user output tok/s that counts as "high-speed"


def with_concurrency(exp: Experiment, exponent: float | None) -> Experiment:
    """``exp`` with every wafer-pipeline pool's ``concurrency_exponent`` set (None: the catalog's)."""
    if exponent is None:
        return exp
    update = {}
    for kind, pool in exp.pools.items():
        if pool.hardware.decode_model == "wafer_pipeline":
            hw = pool.hardware.model_copy(update={"concurrency_exponent": exponent})
            update[kind] = pool.model_copy(update={"hardware": hw})
    return exp.model_copy(update=update)


def load_clusters(trace: str, duration_s: float, prefill_units: int | None = None
                  ) -> list[Experiment]:
    """The five cluster files, the reference's workload switched to ``trace`` if asked and its
    prefill pool resized to ``prefill_units`` (which moves the budget every cluster gets)."""
    over: dict[str, Any] = {"experiment.duration_s": duration_s}
    if prefill_units is not None:
        over["prefill.units"] = prefill_units
    if trace == "mooncake":
        over["workload"] = dict(MOONCAKE)
    else:
        over["workload.end_s"] = None  # the rest of the hour: a sustained rate for duration_s
    return [load_experiment(FILES[0], over), *(load_experiment(f) for f in FILES[1:])]


@dataclass(frozen=True)
class ClaimRow:
    """One run: a cluster at a rate under a CS-3 concurrency exponent, its units and figures."""

    cluster: str
    rate_per_s: float
    exponent: str
    units: dict[str, int]
    figures: dict[str, float | None]


def figures(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per-user tok/s, TTFT, goodput, attainment, $/M tok, J/tok and high-speed tok/s of a run."""
    done = [r for r in rows if r["status"] == "completed" and r["output_tokens"] > 1
            and r["tpot_s"] > 0]
    span = summary["duration_s"] or 1.0
    fast = sum(r["output_tokens"] for r in done if 1 / r["tpot_s"] >= HIGH_SPEED_TOK_S)
    return {
        "user_tok_s": sum(1 / r["tpot_s"] for r in done) / len(done) if done else None,
        "ttft_p50_ms": summary["median_ttft_ms"], "ttft_p99_ms": summary["p99_ttft_ms"],
        "goodput": summary["request_goodput"], "attainment": summary["slo_attainment"],
        "usd_per_m": summary["cost_per_million_tokens"], "j_per_tok": summary["energy_per_token_j"],
        "fast_tok_s": fast / span, "tok_s": summary["output_throughput"],
    }


def run_claims(trace: str, equal: str, rates: list[float], exponents: list[float | None],
               duration_s: float, prefill_units: int | None = None) -> list[ClaimRow]:
    """Every (cluster, exponent, rate) run; exponents only vary the clusters with a CS-3 pool."""
    clusters = load_clusters(trace, duration_s, prefill_units)
    lined = line_up(clusters, equal, [str(f) for f in FILES])
    out = []
    for c in lined:
        has_cs3 = any(p.hardware.decode_model == "wafer_pipeline"
                      for p in c.experiment.pools.values())
        router = c.experiment.policies.router
        choice = PolicyChoice(c.label, router.name, dict(router.params))
        for exponent in exponents if has_cs3 else [None]:
            for rate in rates:
                exp = variant(with_concurrency(c.experiment, exponent), choice, rate,
                              c.experiment.experiment.seed, "virtual")
                result = run_experiment(exp)
                label = "-" if not has_cs3 else "default" if exponent is None else f"{exponent:g}"
                out.append(ClaimRow(c.label, rate, label,
                                    c.units, figures(result.summary,
                                                     result.tables["requests"].to_pylist())))
    return out


COLUMNS = (("user_tok_s", "tok/s per user", 0), ("ttft_p50_ms", "TTFT p50 ms", 0),
           ("ttft_p99_ms", "TTFT p99 ms", 0), ("goodput", "goodput req/s", 2),
           ("attainment", "SLO attainment", 3), ("tok_s", "output tok/s", 0),
           ("fast_tok_s", ">=500 tok/s/user tok/s", 0), ("usd_per_m", "$/M tok", 2),
           ("j_per_tok", "J/tok", 1))


def to_markdown(rows: list[ClaimRow]) -> str:
    """One Markdown table: a row per (cluster, CS-3 concurrency exponent, rate)."""
    head = ["cluster", "units", "CS-3 exponent", "rate req/s", *(label for _, label, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        units = " + ".join(f"{n} {k}" for k, n in r.units.items())
        cells = ["n/a" if r.figures[k] is None else f"{r.figures[k]:,.{d}f}" for k, _, d in COLUMNS]
        lines.append(f"| {r.cluster} | {units} | {r.exponent} | {r.rate_per_s:g} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _exponents(text: str) -> list[float | None]:
    return [None if k == "default" else float(k) for k in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", choices=["azure", "mooncake"], default="azure")
    ap.add_argument("--equal", choices=["cost", "racks"], default="cost")
    ap.add_argument("--rates", default="7,14,28", help="mean request rates (trace rescaled)")
    ap.add_argument("--exponents", default="0,0.5,1",
                    help="CS-3 concurrency_exponent values ('default': the catalog's)")
    ap.add_argument("--duration", type=float, default=60.0, help="emu s of the trace")
    ap.add_argument("--prefill-units", type=int, default=None,
                    help="Trainium2 TP4 prefill units of the reference (a) (the file's: 8)")
    args = ap.parse_args()
    rows = run_claims(args.trace, args.equal, [float(r) for r in args.rates.split(",")],
                      _exponents(args.exponents), args.duration, args.prefill_units)
    print(f"{args.trace} trace, {args.duration:g} s, equal {args.equal}, reference prefill units "
          f"{args.prefill_units or 'as in the file'}, virtual engine\n")
    print(to_markdown(rows))


if __name__ == "__main__":
    main()

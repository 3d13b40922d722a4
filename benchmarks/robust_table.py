"""A robust plan as Markdown for the docs (docs/plan.md, docs/claims.md generated blocks).

    python benchmarks/robust_table.py EXP --search SPACE [--duration S] [--title T]
        [--against h100,b200]

Runs ``disagg plan EXP --search SPACE --robust`` (embedded Ray, a fresh temporary folder) and
prints the decision lines, the shares of the sampled space, the break-even values, the tornado
and, with ``--against``, the break-even CS-3 price of the best CS-3 candidate against the best
candidate built only of each named hardware (price re-scored from the measured capacities).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from disagg.cluster.config import load_experiment
from disagg.experiments.plan.runner import run_plan
from disagg.experiments.plan.space import load_space
from disagg.experiments.robust.dimensions import parse_settings
from disagg.experiments.robust.output import summary
from disagg.experiments.robust.runner import run_robust


def _against(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The break-even price of the best CS-3 candidate against each hardware alone."""
    out = ["", "| break-even | against the best candidate of | finding |", "|---|---|---|"]
    for hw, b in result.analysis.against:
        value = "none in range" if b.value is None else f"{b.value:.4g}"
        out.append(f"| {b.dimension} = {value} | {hw} alone | "
                   f"{b.sentence(b.dimension.split('.')[0]).split(': ', 1)[1]} |")
    return out if len(out) > 3 else []


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown (a plan that measured nothing fails loudly)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment")
    p.add_argument("--search", required=True)
    p.add_argument("--duration", type=float)
    p.add_argument("--title", default="")
    p.add_argument("--against", default="", help="comma-separated hardware names")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="experiment override, e.g. slo.tpot_s=0.05 (numbers parsed as floats)")
    args = p.parse_args(argv)
    over: dict[str, object] = {} if args.duration is None else {
        "experiment.duration_s": args.duration}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            over[key] = float(value)
        except ValueError:
            over[key] = value
    base = load_experiment(args.experiment, over)
    space = load_space(args.search)
    settings = parse_settings(space.robust)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        plan = run_plan(base, space, Path(tmp) / "plan")
        result = run_robust(base, space, settings, plan,
                            against=[h for h in args.against.split(",") if h])
    wall = time.time() - started
    a = result.analysis
    dur = f" --duration {args.duration:g}" if args.duration is not None else ""
    dur += "".join(f" ({item})" for item in args.set)
    lines = [f"**{args.title or base.experiment.name}** — `disagg plan {args.experiment} --search "
             f"{args.search}{dur} --robust`: {len(plan.rows)} candidates, {len(a.shares)} "
             f"contenders (measured or pruned at the default), {result.evaluations_run} robust "
             f"evaluations, {wall:.0f} s wall on this machine, {time.strftime('%Y-%m-%d')}.", ""]
    lines += [f"- {line}" for line in summary(a, settings)]
    lines += ["", "| candidate | best | on the frontier |", "|---|---:|---:|"]
    lines += [f"| {s.label} | {s.best:.0%} | {s.frontier:.0%} |" for s in a.shares[:6]
              if s.best > 0 or s.frontier > 0]
    lines += ["", "| assumption | range | break-even (others at default) |", "|---|---|---|"]
    lines += [f"| {b.dimension} | [{b.low:.4g}, {b.high:.4g}] | "
              f"{b.sentence(b.dimension.split('.')[0]).split(': ', 1)[1]} |" for b in a.break_evens]
    lines += ["", f"| assumption | winner's {a.metric} at low | at high | best at low | "
              "best at high |", "|---|---:|---:|---|---|"]
    lines += [f"| {t.dimension} | {t.objective_at_low:.4g} | {t.objective_at_high:.4g} | "
              f"{t.winner_at_low} | {t.winner_at_high} |" for t in a.tornado]
    lines += _against(result)
    print("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A plan's best-per-family and Pareto-frontier tables as Markdown (docs/plan.md's blocks).

    python benchmarks/plan_table.py EXPERIMENT --search SPACE [--local]

Runs ``disagg plan`` (the same search, on Ray tasks unless ``--local``) into a temporary folder
and prints the counts, the winner and two tables of its report; the folder is removed after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from disagg.cluster.config import load_experiment
from disagg.experiments.plan.report import markdown, plan_report
from disagg.experiments.plan.runner import run_plan
from disagg.experiments.plan.space import load_space

SHOWN = ("Best per family", "Pareto frontier (cheapest first)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("--search", required=True)
    ap.add_argument("--local", action="store_true", help="run in this process (no Ray tasks)")
    args = ap.parse_args()
    base, space = load_experiment(args.experiment), load_space(args.search)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        result = run_plan(base, space, Path(tmp) / "plan", use_ray=not args.local)
        wall = time.monotonic() - t0
    report = plan_report(result.rows, result.front, space.objective.maximize,
                         base.experiment.name)
    kept = replace(report, sections=tuple(s for s in report.sections if s.title in SHOWN))
    text = markdown(kept).split("\n", 2)[2]  # drop the page title
    print(f"`disagg plan {args.experiment} --search {args.search}` "
          f"({wall:.0f} s wall on this machine):\n")
    print(text.replace("\n## ", "\n#### ").rstrip())


if __name__ == "__main__":
    main()

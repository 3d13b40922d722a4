"""``disagg plan``: the cluster and policy with the most goodput per dollar, watt or rack under
the experiment's SLO, searched over a space file (see docs/plan.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from disagg.experiments.cli.common import EXIT_OK, load
from disagg.experiments.cli.interrupts import EXIT_INTERRUPTED, graceful_stop
from disagg.experiments.results.lock import output_locked

if TYPE_CHECKING:
    from disagg.experiments.plan.search import Evaluation


def _progress(console: Console, metric: str) -> Any:
    from disagg.experiments.plan.report import UNITS  # deferred: see cmd_plan
    from disagg.experiments.plan.search import EVALUATED

    unit = UNITS[metric][1]

    def show(row: Evaluation, done: int, total: int) -> None:
        if row.status == EVALUATED:
            what = (f"{row.capacity_per_s:.3g} req/s, {row.objective:.4g} {unit} "
                    f"({row.runs} runs, {row.wall_s:.1f} s)")
        else:
            what = f"{row.status}: {row.reason}"
        console.print(f"plan [{done}/{total}] {row.candidate.label}: {what}", markup=False,
                      soft_wrap=True)
    return show


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    # deferred (the engines and plots): `disagg --help` must not pay for them
    from disagg.experiments.plan.runner import run_plan
    from disagg.experiments.plan.space import load_space

    base = load(args)
    space = load_space(args.search)
    out_dir = Path(args.out) if args.out else Path("results") / f"plan-{base.experiment.name}"
    console.print(f"disagg: planning {base.experiment.name} over {args.search} -> {out_dir} "
                  f"({'in this process' if args.local else 'as Ray tasks'})")
    with output_locked("--out", out_dir), graceful_stop() as stop:
        result = run_plan(base, space, out_dir, resume=args.resume, use_ray=not args.local,
                          address=args.address,
                          progress=_progress(console, space.objective.maximize), stop=stop)
    n = {s: sum(1 for r in result.rows if r.status == s) for s in {r.status for r in result.rows}}
    console.print(f"candidates {len(result.rows)}: " + ", ".join(f"{k} {v}" for k, v in sorted(n.items()))
                  + (f" ({result.resumed} from the earlier run)" if result.resumed else ""))
    if result.winner is None:
        console.print("no candidate was measured; see report.md")
    else:
        w = result.winner
        console.print(f"best: {w.candidate.label} — {w.capacity_per_s:.3g} req/s, "
                      f"{space.objective.maximize} {w.objective:.4g} (best.toml)", markup=False)
    console.print(f"results in {out_dir} (plan.parquet, frontier.csv, report.html, best.toml)")
    if result.stopped:
        console.print(f"disagg: {stop.reason}: the outputs cover the candidates that finished; "
                      "continue with the same command and --resume")
        return EXIT_INTERRUPTED
    if args.robust:
        return _robust(args, console, base, space, result)
    return EXIT_OK


def _robust(args: argparse.Namespace, console: Console, base: Any, space: Any,
            plan: Any) -> int:
    """The robust analysis of a finished plan: progress lines, then the summary (~5 lines)."""
    from disagg.experiments.robust.dimensions import parse_settings
    from disagg.experiments.robust.evaluate import RobustStopped
    from disagg.experiments.robust.output import summary
    from disagg.experiments.robust.runner import run_robust

    settings = parse_settings(space.robust)

    def show(what: str, done: int, total: int) -> None:
        console.print(f"robust [{done}/{total}] {what}", markup=False, soft_wrap=True)

    console.print(f"disagg: robust plan over the assumption space ({settings.samples} points, "
                  f"seed {settings.seed}; evaluations cached in {plan.out_dir})")
    with output_locked("--out", plan.out_dir), graceful_stop() as stop:
        try:
            result = run_robust(base, space, settings, plan, use_ray=not args.local,
                                address=args.address, progress=show, stop=stop)
        except RobustStopped as e:
            console.print(f"disagg: {stop.reason}: {e}; the finished evaluations are kept: "
                          "continue with the same command and --resume")
            return EXIT_INTERRUPTED
    for line in summary(result.analysis, settings):
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"robust: {result.evaluations_run} evaluations run, {result.evaluations_cached} "
                  f"from the cache; results in {plan.out_dir} (robust.json, robust.parquet, "
                  "robust.html)")
    return EXIT_OK


def add_command(sub: Any) -> None:
    """Register ``plan`` on the CLI's subparsers."""
    p = sub.add_parser("plan", help="search clusters and policies for the most goodput per "
                                    "dollar/watt/rack at the SLO (virtual engine)")
    p.add_argument("experiment", help="experiment TOML file (workload, model, SLO, defaults)")
    p.add_argument("--search", required=True, metavar="SPACE", help="search space TOML file")
    p.add_argument("--out", help="plan folder (default results/plan-<name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted plan in --out (finished candidates are kept)")
    p.add_argument("--local", action="store_true", help="run in this process instead of Ray tasks")
    p.add_argument("--address", help="Ray cluster for the tasks (default: RAY_ADDRESS or embedded)")
    p.add_argument("--robust", action="store_true",
                   help="also evaluate the decision over the assumption space (the catalog's "
                        "ranges, [robust] in SPACE): shares, break-evens, tornado, error bands")
    p.add_argument("--duration", type=float, help="emu seconds of arrivals per run")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_plan)

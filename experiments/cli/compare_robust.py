"""``disagg compare A.toml B.toml ... --equal ... --robust``: the line-up's decision over the
assumption space (docs/compare.md, "Robust line-ups"). The machinery (engines, pyarrow,
matplotlib) is imported inside the command, so that ``disagg --help`` does not load it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.common import EXIT_OK, load
from disagg.experiments.cli.interrupts import EXIT_INTERRUPTED, graceful_stop
from disagg.experiments.results.lock import output_locked

if TYPE_CHECKING:
    from disagg.experiments.robust.dimensions import RobustSettings
    from disagg.experiments.robust.lineup_runner import LineupRobustResult


def _out_dir(args: argparse.Namespace, exp: Experiment) -> Path:
    """``--out``, else the first experiment's ``output.dir`` + ``-compare-robust``."""
    if args.out:
        return Path(args.out)
    default = exp.output_dir
    return default.with_name(default.name + "-compare-robust")


def cmd_compare_robust(args: argparse.Namespace, console: Console) -> int:
    """Check the inputs, line the clusters up at every assumption point, print the summary."""
    from disagg.experiments.compare.lineup import line_up
    from disagg.experiments.compare.runs import parse_rates
    from disagg.experiments.robust.evaluate import RobustStopped
    from disagg.experiments.robust.lineup_runner import (
        load_settings,
        open_folder,
        run_lineup_robust,
    )

    _check_args(args)
    settings = load_settings(args.robust_space)
    rates = parse_rates(args.rates) if args.rates else None
    exps = [load(argparse.Namespace(**{**vars(args), "experiment": p})) for p in args.experiment]
    equal = args.equal or "none"
    line_up(exps, equal, list(args.experiment))  # refuse a bad line-up before the folder
    out = _out_dir(args, exps[0])

    def show(what: str, done: int, total: int) -> None:
        console.print(f"robust [{done}/{total}] {what}", markup=False, soft_wrap=True)

    with output_locked("--out", out), graceful_stop() as stop:
        open_folder(out, args.resume)
        how = "in this process" if args.local else "as Ray tasks"
        console.print(f"disagg: robust line-up of {len(exps)} clusters at equal {equal} over the "
                      f"assumption space ({settings.samples} points, seed {settings.seed}; "
                      f"virtual engine, {how}; runs cached in {out})", markup=False,
                      soft_wrap=True)
        try:
            result = run_lineup_robust(exps, list(args.experiment), equal, rates, args.repeats,
                                       settings, out, use_ray=not args.local,
                                       address=args.address, progress=show, stop=stop)
        except RobustStopped as e:
            console.print(f"disagg: {stop.reason}: {e}; the finished runs are kept: continue "
                          "with the same command and --resume")
            return EXIT_INTERRUPTED
    _print_summary(console, result, settings, out)
    return EXIT_OK


def _check_args(args: argparse.Namespace) -> None:
    """ConfigError unless two or more experiments are lined up and no --policies is given."""
    if len(args.experiment) < 2:
        raise ConfigError(f"--robust: value {len(args.experiment)} experiment is not allowed; "
                          "allowed: a line-up of two or more experiments (with --equal)")
    if args.policies:
        raise ConfigError(f"--policies: value {args.policies!r} is not allowed with --robust; "
                          "allowed: omit it (each cluster keeps its own router)")


def _print_summary(console: Console, result: LineupRobustResult, settings: RobustSettings,
                   out: Path) -> None:
    """The line-up's decision over the assumption space, then the runs made and where the
    results are."""
    from disagg.experiments.robust.lineup_output import lineup_summary

    for line in lineup_summary(result.analysis, settings):
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"robust: {result.runs} runs made, {result.cached} from the journal; results in "
                  f"{out} (robust.json, robust.parquet, robust.html)", markup=False,
                  soft_wrap=True)

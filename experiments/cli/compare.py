"""The ``compare`` and ``report`` subcommands, and the progress display while a comparison runs.

The comparison machinery (engines, pyarrow, matplotlib) is imported inside the commands, so that
building the parser for ``disagg --help`` or ``disagg validate`` does not load it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.common import EXIT_OK, add_override_flags, load, output_path
from disagg.experiments.cli.interrupts import EXIT_INTERRUPTED, graceful_stop
from disagg.experiments.results.lock import output_locked
from disagg.experiments.view.runner import live_interval, run_progress

if TYPE_CHECKING:
    from rich.progress import Progress

    from disagg.experiments.compare.lineup import LinedUp
    from disagg.experiments.compare.runs import RunPlan

# the line-up's equal modes, as disagg.experiments.compare.lineup.EQUAL (a test checks they agree)
EQUAL = ("cost", "power", "racks", "none")


class CompareProgress:
    """Runs done of total with the ETA: a rich progress bar on a terminal, else one plain line per
    finished run. Use as a context manager; call it with each finished run."""

    def __init__(self, console: Console, total: int) -> None:
        self.console, self.total, self.done = console, total, 0
        self.started = time.time()
        self._bar: Progress | None = None
        if console.is_terminal:
            from rich.progress import (  # deferred: only a compare on a terminal shows it
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("compare"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), console=console)
            self._task = self._bar.add_task("", total=total)

    def __enter__(self) -> CompareProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    @contextmanager
    def live_run(self, plan: RunPlan) -> Iterator[tuple[Any, float]]:
        """Show one ray-engine run: its live dashboard on a terminal (the bar pauses meanwhile),
        plain progress lines elsewhere."""

        elapsed = time.time() - self.started
        eta = f"{elapsed / self.done * (self.total - self.done):.0f} s" if self.done else "?"
        title = (f"compare run {self.done + 1}/{self.total} · {plan.policy.label} "
                 f"{plan.rate_label} · ETA {eta}")
        terminal = self._bar is not None
        if self._bar is not None:
            self._bar.stop()
        try:
            with run_progress(self.console, plan.experiment, terminal, title) as callback:
                yield callback, live_interval(terminal)
        finally:
            if self._bar is not None:
                self._bar.start()

    def __call__(self, plan: RunPlan, summary: dict[str, Any]) -> None:
        self.done += 1
        what = (f"{plan.policy.label} {plan.rate_label}, repeat {plan.repeat}: "
                f"attainment {100 * (summary.get('slo_attainment') or 0):.1f} %")
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=what)
            return
        elapsed = time.time() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        self.console.print(f"  run {self.done}/{self.total} done ({what}) · elapsed {elapsed:.0f} s"
                           f" · ETA {eta:.0f} s", markup=False, highlight=False, soft_wrap=True)


def _print_tables(console: Console, report: Any) -> None:
    from disagg.experiments.compare.report import capacity_rows, kind
    from disagg.experiments.compare.table import to_rich

    for table in to_rich(report.table, f"{kind(report)}: mean ± 95% CI", report.columns):
        console.print(table)
    caps = ", ".join(f"{p} {c}" for p, c in capacity_rows(report))
    console.print(f"capacity (highest offered rate at the SLO attainment target — 90 %, or every "
                  f"percentile target met: docs/slo.md — req/s): {caps}", soft_wrap=True)


def _print_lineup(console: Console, lined: list[LinedUp], equal: str) -> None:
    unit = {"cost": "$/h", "power": "kW", "racks": "racks"}.get(equal)
    scale = 1e-3 if equal == "power" else 1.0
    for c in lined:
        pools = ", ".join(f"{n} {k}" for k, n in c.units.items())
        spent = "" if c.budget is None else \
            f" · {c.budget * scale:,.2f} {unit} ({100 * (c.ratio or 0):.0f} % of the first)"
        console.print(f"  {c.label}: {pools} units{spent}", markup=False, highlight=False)


def _plans(args: argparse.Namespace, console: Console) -> tuple[Any, list[RunPlan], dict[str, Any]]:
    """The runs of a policy comparison (one experiment) or of a cluster line-up (several)."""
    from disagg.experiments.compare.lineup import line_up, lineup_manifest, plan_lineup
    from disagg.experiments.compare.runs import parse_policies, parse_rates, plan_runs

    rates = parse_rates(args.rates) if args.rates else None
    if len(args.experiment) == 1 and args.equal is None:
        if args.policies is None or not args.policies.strip():
            given = "is missing" if args.policies is None else f"value {args.policies!r} is empty"
            raise ConfigError(f"--policies {given}; allowed: comma-separated router policies "
                              "(or give several experiments to line up)")
        base = load(argparse.Namespace(**{**vars(args), "experiment": args.experiment[0]}),
                    check=False)  # plan_runs checks every policy's variant once
        return base, plan_runs(base, parse_policies(args.policies), rates, args.repeats), {}
    if args.policies:
        raise ConfigError(f"--policies: value {args.policies!r} is not allowed with a line-up of "
                          "clusters; allowed: omit it (each cluster keeps its own router)")
    exps = [load(argparse.Namespace(**{**vars(args), "experiment": p})) for p in args.experiment]
    equal = args.equal or "none"
    lined = line_up(exps, equal, list(args.experiment))
    console.print(f"line-up at equal {equal} (the first cluster's; units rounded down):")
    _print_lineup(console, lined, equal)
    return lined[0].experiment, plan_lineup(lined, rates, args.repeats), lineup_manifest(lined, equal)


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from disagg.experiments.compare.runs import compare

    if args.robust:
        from disagg.experiments.cli.compare_robust import cmd_compare_robust

        return cmd_compare_robust(args, console)
    for flag, value in (("--robust-space", args.robust_space), ("--resume", args.resume)):
        if value:
            raise ConfigError(f"{flag}: value {value!r} is not allowed without --robust; "
                              "allowed: add --robust (a robust line-up), or omit it")

    base, plans, extra = _plans(args, console)
    labels = list(dict.fromkeys(p.policy.label for p in plans))
    out = output_path(args, base, "-compare")
    engine = plans[0].experiment.experiment.engine
    how = "in parallel as Ray tasks" if engine == "virtual" and not args.local else "one after another"
    what = "clusters" if extra else "policies"
    console.print(f"disagg: comparing {len(labels)} {what} x {len(plans) // len(labels)} "
                  f"(rate, repeat) cells = {len(plans)} runs on the {engine} engine, {how} -> {out}")
    started = time.time()
    with output_locked("--out" if args.out else "output.dir", out), graceful_stop() as stop, \
            CompareProgress(console, len(plans)) as progress:
        output_path(args, base, "-compare")  # again, now that no other disagg can be writing it
        report = compare(base, plans, out, address=args.address, use_ray=not args.local,
                         progress=progress, live=progress.live_run, stop=stop,
                         manifest_extra=extra)
    if report is None:
        console.print(f"disagg: {stop.reason} before any run finished; nothing written")
        return EXIT_INTERRUPTED
    _print_tables(console, report)
    console.print(f"report in {out / 'report.html'} ({time.time() - started:.1f} s wall)")
    if stop.requested:
        console.print(f"disagg: {stop.reason}: the report covers the {progress.done} of "
                      f"{len(plans)} runs that finished")
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from disagg.experiments.compare.report import render_report

    report = render_report(Path(args.dir))
    _print_tables(console, report)
    console.print(f"report in {Path(args.dir) / 'report.html'}")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``compare`` and ``report`` on the CLI's subparsers."""
    cmp = sub.add_parser("compare", help="run an experiment under several router policies, or "
                                         "line several clusters up, and write a comparison report")
    cmp.add_argument("experiment", nargs="+",
                     help="experiment TOML file; several: a line-up of clusters (see --equal)")
    cmp.add_argument("--policies",
                     help="comma-separated router policies: name, name:key=value:..., or a dotted "
                          "path (one experiment only)")
    cmp.add_argument("--equal", choices=EQUAL,
                     help="line-up: scale every cluster's units to the first's cost ($/h), power "
                          "(W) or racks, rounded down (none: as given)")
    cmp.add_argument("--robust", action="store_true",
                     help="line-up: evaluate which cluster wins over the assumption space (the "
                          "catalog's ranges): shares, break-evens, tornado -> robust.html")
    cmp.add_argument("--robust-space", metavar="FILE",
                     help="--robust: a TOML file whose [robust] table sets samples, seed, only "
                          "and [robust.HW] ranges (as in a plan's space file)")
    cmp.add_argument("--resume", action="store_true",
                     help="--robust: continue in --out, reusing the runs its journal holds")
    cmp.add_argument("--rates", help="comma-separated request rates per emu s "
                                     "(default: the experiment's workload.rate_per_s)")
    add_override_flags(cmp)
    cmp.add_argument("--repeats", type=int, default=1, help="seeds per cell: seed, seed+1, ...")
    cmp.add_argument("--engine", choices=["ray", "virtual"])
    cmp.add_argument("--out", help="comparison folder (default: <output.dir>-compare); must not "
                                   "exist")
    cmp.add_argument("--force", action="store_true",
                     help="replace the comparison folder if disagg wrote it (never anything else)")
    cmp.add_argument("--duration", type=float, help="emu seconds of arrivals")
    cmp.add_argument("--seed", type=int, help="base seed (repeat k uses seed + k)")
    cmp.add_argument("--dilation", type=float, help="ray engine: wall seconds per emu second")
    cmp.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or embedded)")
    cmp.add_argument("--local", action="store_true",
                     help="virtual engine: run in this process instead of as Ray tasks")
    cmp.set_defaults(func=cmd_compare)
    rep = sub.add_parser("report", help="re-render a comparison's report from its saved runs")
    rep.add_argument("dir", help="a folder written by `disagg compare`")
    rep.set_defaults(func=cmd_report)

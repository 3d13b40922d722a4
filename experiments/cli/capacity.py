"""``disagg capacity``: the highest request rate a cluster and policy sustain at the SLO target,
by bisection on the virtual engine."""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console

from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.checks import check_experiment
from disagg.experiments.cli.common import add_override_flags, load
from disagg.experiments.cli.interrupts import EXIT_INTERRUPTED, graceful_stop


def _base(args: argparse.Namespace) -> Experiment:
    from disagg.experiments.compare.runs import parse_policies, variant  # deferred: see main.py

    exp = load(args, check=not args.policy)  # a --policy variant is checked below, once
    if "rate_per_s" not in type(exp.workload).model_fields:
        raise ConfigError(f"workload.kind: value {exp.workload.kind!r} has no arrival rate to "
                          "search; allowed: synthetic, mix or trace workloads")
    if args.policy:
        [choice] = parse_policies(args.policy)
        exp = variant(exp, choice, float(getattr(exp.workload, "rate_per_s", 0) or 0),
                      exp.experiment.seed, "virtual")
        check_experiment(exp)
    return exp


def _bounds(args: argparse.Namespace, nominal: float) -> tuple[float, float, float]:
    """The search's lowest and highest rate and resolution (req/s), and the checked target:
    a value given (even 0) is used or refused, never replaced by the default."""
    if not (math.isfinite(args.target) and 0 < args.target <= 1):
        raise ConfigError(f"--target: value {args.target:g} is not allowed; allowed: an SLO "
                          "attainment fraction in (0, 1], e.g. 0.9 for 90 %")
    lo = nominal / 4 if args.lo is None else args.lo
    hi = nominal * 4 if args.hi is None else args.hi
    tol = nominal / 20 if args.tol is None else args.tol
    if not all(map(math.isfinite, (lo, hi, tol))) or not 0 < lo < hi or tol <= 0:
        raise ConfigError(f"--lo/--hi/--tol: values {lo:g}/{hi:g}/{tol:g} are not allowed; "
                          "allowed: finite numbers with 0 < lo < hi and tol > 0")
    return lo, hi, tol


def cmd_capacity(args: argparse.Namespace, console: Console) -> int:
    # deferred (the engines and plots): `disagg --help` must not pay for them
    from disagg.experiments.compare.capacity import SearchStopped, attainment, bisect_capacity
    from disagg.experiments.compare.data import target_attainment

    exp = _base(args)
    nominal = float(getattr(exp.workload, "rate_per_s", None) or 1.0)
    if args.target is None:
        args.target = target_attainment(exp.slo.percentile_form)
    lo, hi, tol = _bounds(args, nominal)

    measured: dict[float, float] = {}

    def measure(e: Experiment, rate: float, repeats: int) -> float:
        value = attainment(e, rate, repeats, stop)
        measured[rate] = value
        console.print(f"  {rate:10.3f} req/s -> SLO attainment {100 * value:5.1f} %",
                      markup=False)
        return value

    console.print(f"disagg: capacity of {exp.experiment.name} with router "
                  f"{exp.policies.router.name} (virtual engine, {args.repeats} seed(s) per rate, "
                  f"target {100 * args.target:g} %), searching {lo:g}..{hi:g} req/s")
    with graceful_stop() as stop:
        try:
            cap = bisect_capacity(exp, lo, hi, tol, args.repeats, args.target, measure)
        except SearchStopped as e:
            _print_bracket(console, str(e), measured, args.target)
            return EXIT_INTERRUPTED
    if cap is None:
        console.print(f"capacity: below {lo:g} req/s (the lowest rate already misses the target)")
    elif cap >= hi:
        console.print(f"capacity: at least {hi:g} req/s (the highest rate searched meets it)")
    else:
        console.print(f"capacity: {cap:.3f} req/s (within {tol:g} req/s)")
    return 0


def _print_bracket(console: Console, reason: str, measured: dict[float, float],
                   target: float) -> None:
    """What an interrupted search found so far: the rates measured and the bracket they give."""
    ok = [r for r, v in measured.items() if v >= target]
    miss = [r for r, v in measured.items() if v < target and r > max(ok, default=0.0)]
    found = f"at least {max(ok):g} req/s" if ok else "no rate measured so far met the target"
    below = f", below {min(miss):g} req/s" if ok and miss else ""
    console.print(f"disagg: {reason}: search stopped after {len(measured)} rate(s); capacity so "
                  f"far: {found}{below}", markup=False)


def add_command(sub: Any) -> None:
    """Register ``capacity`` on the CLI's subparsers."""
    cap = sub.add_parser("capacity", help="find the highest rate that meets the SLO target "
                                          "(bisection on the virtual engine)")
    cap.add_argument("experiment", help="experiment TOML file")
    cap.add_argument("--policy", help="router policy (default: the experiment's)")
    cap.add_argument("--lo", type=float, help="lowest rate searched, req/s (default rate/4)")
    cap.add_argument("--hi", type=float, help="highest rate searched, req/s (default rate x 4)")
    cap.add_argument("--tol", type=float, help="resolution, req/s (default rate/20)")
    cap.add_argument("--repeats", type=int, default=1, help="seeds averaged per rate")
    cap.add_argument("--target", type=float, help="SLO attainment target (default 0.9; 1.0, "
                     "every target met, with percentile or slowdown SLOs: docs/slo.md)")
    cap.add_argument("--duration", type=float, help="emu seconds of arrivals")
    cap.add_argument("--seed", type=int)
    add_override_flags(cap)
    cap.set_defaults(func=cmd_capacity)

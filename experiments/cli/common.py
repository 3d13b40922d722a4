"""What every ``disagg`` subcommand shares: exit codes, the argument parser class, and loading the
experiment named on the command line (with its flag overrides, fully checked)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from disagg.actors.engines.address import check_address
from disagg.cluster.config import Experiment, load_experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.overrides import parse_sets
from disagg.experiments.checks import check_experiment
from disagg.experiments.results.guard import check_output, check_template_root

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 (bad input) with one line on a usage error."""

    def error(self, message: str) -> NoReturn:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"disagg: error: {message}\n")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from the flags: ``--set KEY=VALUE`` first, then the named flags."""
    out: dict[str, Any] = parse_sets(getattr(args, "set", None) or [])
    if getattr(args, "ship_code", False):
        out["placement.ship_code"] = True
    if getattr(args, "event_log", False):
        out["output.event_log"] = True
    for flag, key in (("engine", "experiment.engine"), ("dilation", "experiment.dilation"),
                      ("seed", "experiment.seed"), ("duration", "experiment.duration_s")):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    return out


def rate_override(exp: Experiment, rate: float) -> dict[str, Any]:
    """``--rate R``: the workload's mean arrival rate, req/s (a trace replay: time-scaled so its
    mean rate is R, replacing any ``speedup``); ConfigError for a workload without a rate."""
    fields = type(exp.workload).model_fields
    if "rate_per_s" not in fields:
        raise ConfigError(f"--rate: value {rate:g} is not allowed for workload kind "
                          f"{exp.workload.kind!r}, which has no arrival rate; allowed: "
                          "synthetic, mix or trace workloads")
    out: dict[str, Any] = {"workload.rate_per_s": rate}
    if "speedup" in fields:
        out["workload.speedup"] = None
    return out


def add_override_flags(parser: argparse.ArgumentParser, rate: bool = True) -> None:
    """``--set KEY=VALUE`` (repeatable) and, unless ``rate`` is False, ``--rate R``."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (dotted path, TOML value), repeatable; "
                        "applied before validation")
    if rate:
        parser.add_argument("--rate", type=float, metavar="R",
                            help="workload arrival rate, req/s (a trace: time-scaled to it)")


def load(args: argparse.Namespace, check: bool = True) -> Experiment:
    """Load, override and (unless ``check`` is False, for a caller that checks each variant it
    derives) fully check the experiment named on the command line."""
    exp = load_experiment(args.experiment, overrides(args))
    rate = getattr(args, "rate", None)
    if rate is not None:
        exp = load_experiment(args.experiment, {**overrides(args), **rate_override(exp, rate)})
    if check:
        check_experiment(exp)
    if exp.experiment.engine == "ray" or not getattr(args, "local", True):
        check_address(getattr(args, "address", None))
    return exp


def output_path(args: argparse.Namespace, exp: Experiment, suffix: str = "") -> Path:
    """Where the command writes: ``--out``, else ``output.dir`` (plus ``suffix``), checked before
    anything runs (new, or with ``--force`` a folder disagg wrote; in a writable place)."""
    if args.out:
        return check_output("--out", Path(args.out), args.force)
    check_template_root(exp.output.dir, exp.experiment.name)
    default = exp.output_dir
    return check_output("output.dir", default.with_name(default.name + suffix), args.force)

"""What every ``disagg`` subcommand shares: exit codes, the argument parser class, and loading the
experiment named on the command line (with its flag overrides, fully checked)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from disagg.actors.engines.build import check_experiment
from disagg.cluster.config import Experiment, load_experiment

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 (bad input) with one line on a usage error."""

    def error(self, message: str) -> NoReturn:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"disagg: error: {message}\n")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "ship_code", False):
        out["placement.ship_code"] = True
    for flag, key in (("engine", "experiment.engine"), ("dilation", "experiment.dilation"),
                      ("seed", "experiment.seed"), ("duration", "experiment.duration_s")):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    return out


def load(args: argparse.Namespace) -> Experiment:
    """Load, override and fully check the experiment named on the command line."""
    exp = load_experiment(args.experiment, overrides(args))
    check_experiment(exp)
    return exp

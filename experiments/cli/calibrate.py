"""``disagg calibrate``: re-run the least-squares fit and print every reference figure against
the models (fit or prediction), the MAPE over each, and the fitted constants."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.calibration import calibration_rows
from disagg.cluster.hardware.fit import fit_all
from disagg.experiments.cli.common import EXIT_OK
from disagg.experiments.view.calibration import calibration_report, calibration_view


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Fit, compare and report; the table uses the catalog's (stored) constants."""
    report = calibration_report(calibration_rows(), fit_all())
    if args.json:
        console.print_json(json.dumps(report))
    else:
        console.print(calibration_view(report))
    if args.out:
        try:
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        except OSError as e:
            raise ConfigError(f"--out: value {args.out!r} cannot be written ({e.strerror}); "
                              "allowed: a file path in an existing, writable folder") from None
        if not args.json:
            console.print(f"calibration written to {args.out}")
    return EXIT_OK


def add_command(sub: Any) -> None:
    """Register ``calibrate`` on the ``disagg`` subcommand parser."""
    cal = sub.add_parser("calibrate", help="fit the hardware models to the measured figures and "
                         "show every reference figure against them")
    cal.add_argument("--json", action="store_true", help="print the report as JSON instead")
    cal.add_argument("--out", metavar="FILE", help="also write the report as JSON to FILE")
    cal.set_defaults(func=cmd_calibrate)

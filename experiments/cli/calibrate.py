"""``disagg calibrate``: re-run the least-squares fit and print every reference figure against
the models (fit or prediction), the MAPE over each, and the fitted constants."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.common import EXIT_OK
from disagg.experiments.view.tabular import FORMATS, print_tables


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Fit, compare and report; the table uses the catalog's (stored) constants."""
    out = _checked_out(args.out, args.force) if args.out else None
    # deferred (the fit needs scipy): `disagg --help` must not pay for it
    from disagg.cluster.hardware.calibration import calibration_rows
    from disagg.cluster.hardware.fit import fit_all
    from disagg.experiments.view.calibration import (
        calibration_report,
        constant_table,
        figure_table,
        mape_line,
    )

    report = calibration_report(calibration_rows(), fit_all())
    fmt = "json" if args.json else args.format
    if fmt == "json":  # the whole report as data (the same as --out writes)
        console.out(json.dumps(report, indent=1), highlight=False)
    else:
        chosen = print_tables(console, [figure_table(report)], fmt)
        console.out(("# " if chosen == "csv" else "") + mape_line(report), highlight=False)
        print_tables(console, [constant_table(report)], chosen)
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp")  # written whole, then renamed into place
        try:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            from disagg.cluster.errors import OutputWriteError

            raise OutputWriteError(out, e) from None
        if not args.json:
            console.print(f"calibration written to {args.out}")
    return EXIT_OK


def _checked_out(value: str, force: bool) -> Path:
    """``--out FILE``: a new file in a writable folder, or (``--force``) an existing file to
    replace; never a folder. Checked before the fit runs."""
    out = Path(value)
    if out.is_dir():
        raise ConfigError(f"--out: value '{out}' is a folder; allowed: a file path")
    if (out.exists() or out.is_symlink()) and not force:
        raise ConfigError(f"--out: value '{out}' already exists; allowed: a new file, or "
                          "--force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out: value '{out}' cannot be written (its folder '{parent}' is "
                          "missing or not writable); allowed: a file path in an existing, "
                          "writable folder")
    return out


def add_command(sub: Any) -> None:
    """Register ``calibrate`` on the ``disagg`` subcommand parser."""
    cal = sub.add_parser("calibrate", help="fit the hardware models to the measured figures and "
                         "show every reference figure against them")
    cal.add_argument("--format", choices=FORMATS, default="auto",
                     help="table, plain (column: value lines), csv or json (the whole report); "
                          "auto: table on a wide terminal, plain on a narrow one, csv when piped")
    cal.add_argument("--json", action="store_true", help="the same as --format json")
    cal.add_argument("--out", metavar="FILE", help="also write the report as JSON to FILE "
                     "(must not exist)")
    cal.add_argument("--force", action="store_true", help="replace FILE if it exists")
    cal.set_defaults(func=cmd_calibrate)

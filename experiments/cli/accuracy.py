"""``disagg accuracy``: run the accuracy suite (published results end to end on the virtual
engine) and print emulated against published with the error, and the MAPE over the fitted and
over the predicted cases separately (flagged cases are shown, outside both)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rich.console import Console

from disagg.experiments.cli.common import EXIT_OK
from disagg.experiments.view.tabular import FORMATS, Tabular, print_tables

if TYPE_CHECKING:
    from disagg.experiments.compare.accuracy import CaseResult


def accuracy_report(results: list[CaseResult]) -> dict[str, Any]:
    """The suite's results as plain data (what ``--json`` prints)."""
    from disagg.experiments.compare.accuracy import mape  # deferred: `disagg run` needs none

    return {
        "cases": [{
            "key": r.case.figure_key, "set": r.case.case_set, "experiment": r.case.experiment,
            "overrides": r.case.overrides, "metric": r.case.figure.metric,
            "published": r.case.figure.published, "emulated": r.emulated, "error": r.error,
            "source": r.case.figure.source, "method": r.case.figure.method,
            "configuration": r.case.figure.configuration,
        } for r in results],
        "mape": {"fitted": mape(results, "fitted"), "predicted": mape(results, "predicted")},
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def accuracy_table(report: dict[str, Any]) -> Tabular:
    """One row per case: published, emulated, error, set, source."""
    rows = tuple((c["key"], c["configuration"], c["method"], c["metric"],
                  f"{c['published']:,.2f}", f"{c['emulated']:,.2f}",
                  f"{100 * c['error']:+.1f} %", c["set"], c["source"])
                 for c in report["cases"])
    return Tabular("published results against the emulator (virtual engine)",
                   ("case", "configuration", "method", "metric", "published", "emulated",
                    "error", "set", "source"), rows)


def mape_line(report: dict[str, Any]) -> str:
    """Both MAPEs in one sentence."""
    m = report["mape"]
    return (f"MAPE over fitted cases: {_pct(m['fitted'])}; over predicted cases: "
            f"{_pct(m['predicted'])} (flagged cases outside both)")


def cmd_accuracy(args: argparse.Namespace, console: Console) -> int:
    """Run the chosen cases and report."""
    from disagg.experiments.compare.accuracy import cases, run_case

    chosen = [c for c in cases() if c.fast or not args.fast]
    report = accuracy_report([run_case(c) for c in chosen])
    if args.json:
        console.out(json.dumps(report, indent=1), highlight=False)
        return EXIT_OK
    fmt = print_tables(console, [accuracy_table(report)], args.format)
    console.out(("# " if fmt == "csv" else "") + mape_line(report), highlight=False)
    return EXIT_OK


def add_command(sub: Any) -> None:
    """Register ``accuracy`` on the ``disagg`` subcommand parser."""
    acc = sub.add_parser("accuracy", help="run published results through the emulator and "
                         "print the error, MAPE over fitted and over predicted cases")
    acc.add_argument("--fast", action="store_true", help="only the fast subset (CI)")
    acc.add_argument("--json", action="store_true", help="the report as JSON")
    acc.add_argument("--format", choices=FORMATS, default="auto",
                     help="table, plain, csv or json (as disagg catalog)")
    acc.set_defaults(func=cmd_accuracy)

"""Rich tables and a plain dict for ``disagg calibrate``: every reference figure against the
models, the MAPE over fitted and over predicted figures, and the fitted constants."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from disagg.cluster.hardware.calibration import CalibrationRow, mape
from disagg.cluster.hardware.catalog import get_hardware
from disagg.cluster.hardware.fit import FitResult


def _use(row: CalibrationRow) -> str:
    f = row.figure
    return f.kind if f.comparable else f"{f.kind}, not comparable"


def calibration_report(rows: list[CalibrationRow], fits: list[FitResult]) -> dict[str, Any]:
    """The whole calibration as plain data (what ``--json`` / ``--out`` write)."""
    figures = [{
        "key": r.figure.key, "source": r.figure.source, "configuration": r.figure.configuration,
        "metric": r.figure.metric, "published": r.figure.published, "emulated": r.emulated,
        "error": r.error, "use": r.figure.kind, "comparable": r.figure.comparable,
        "note": r.figure.note,
    } for r in rows]
    constants = []
    for fit in fits:
        catalog = get_hardware(fit.spec.hardware)
        for p in fit.spec.params:
            value = fit.values[p.field]
            value = p.lower if abs(value - p.lower) <= 1e-9 * p.unit else value
            constants.append({
                "hardware": fit.spec.hardware, "field": p.field, "fitted": value,
                "catalog": getattr(catalog, p.field), "unit": p.unit_name or "fraction",
                "meaning": p.meaning,
                "at_bound": bool(min(value - p.lower, p.upper - value) <= 1e-9 * p.unit),
            })
    return {
        "figures": figures, "constants": constants,
        "mape": {"fit": mape(rows, "fit"), "predict": mape(rows, "predict"),
                 "predict_including_not_comparable": mape(rows, "predict", False)},
    }


def _figure_table(report: dict[str, Any]) -> Table:
    t = Table(title="reference figures against the models")
    for col in ("figure", "source", "configuration", "metric", "published", "emulated",
                "error", "use", "note"):
        t.add_column(col, no_wrap=col == "figure",
                     justify="right" if col in ("published", "emulated", "error") else "left")
    for f in report["figures"]:
        use = f["use"] if f["comparable"] else f"{f['use']}, not comparable"
        t.add_row(f["key"], f["source"], f["configuration"], f["metric"],
                  f"{f['published']:,.2f}", f"{f['emulated']:,.2f}",
                  f"{100 * f['error']:+.1f} %", use, f["note"])
    return t


def _constant_table(report: dict[str, Any]) -> Table:
    t = Table(title="fitted constants (least squares; the catalog stores them rounded)")
    for col in ("hardware", "constant", "fitted", "catalog", "unit", "meaning"):
        t.add_column(col)
    for c in report["constants"]:
        scale = {"us": 1e6, "ms": 1e3}.get(c["unit"], 1.0)
        bound = " (at bound)" if c["at_bound"] else ""
        t.add_row(c["hardware"], c["field"], f"{c['fitted'] * scale:.4g}{bound}",
                  f"{c['catalog'] * scale:.4g}", c["unit"], c["meaning"])
    return t


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def calibration_view(report: dict[str, Any]) -> Group:
    """The figure table, the MAPEs and the constants table."""
    m = report["mape"]
    line = (f"MAPE over fitted figures: {_pct(m['fit'])}; over predicted figures: "
            f"{_pct(m['predict'])} (comparable ones; {_pct(m['predict_including_not_comparable'])}"
            " including figures measured under conditions the models do not emulate)")
    return Group(_figure_table(report), line, _constant_table(report))

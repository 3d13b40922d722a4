"""Tables and a plain dict for ``disagg calibrate``: every reference figure against the
models, the MAPE over fitted and over predicted figures, and the fitted constants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from disagg.cluster.hardware.calibration import CalibrationRow, mape
from disagg.cluster.hardware.catalog import get_hardware
from disagg.cluster.hardware.reference import Figure
from disagg.experiments.view.tabular import Tabular

if TYPE_CHECKING:  # the fit needs scipy
    from disagg.cluster.hardware.fit import FitResult


def method_label(fig: Figure) -> str:
    """A figure's method in words: plain, speculative with its draft, or unknown."""
    if fig.spec is None:
        return fig.method
    s = fig.spec
    draft = f"{s.draft} draft" if s.method == "draft_model" else "draft heads"
    return f"speculative ({draft}, gamma {s.gamma}, alpha {s.alpha:g})"


def calibration_report(rows: list[CalibrationRow], fits: list[FitResult]) -> dict[str, Any]:
    """The whole calibration as plain data (what ``--json`` / ``--out`` write)."""
    figures = [{
        "key": r.figure.key, "source": r.figure.source, "configuration": r.figure.configuration,
        "metric": r.figure.metric, "published": r.figure.published, "emulated": r.emulated,
        "error": r.error, "use": r.figure.kind, "comparable": r.figure.in_mape,
        "method": method_label(r.figure), "generation": r.figure.generation,
        "date": r.figure.date, "weight_dtype": r.figure.weight_dtype,
        "alpha_source": r.figure.spec.alpha_source if r.figure.spec else "",
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


def figure_table(report: dict[str, Any]) -> Tabular:
    """Every reference figure of ``report`` against the models."""
    rows = []
    for f in report["figures"]:
        use = f["use"] if f["comparable"] else f"{f['use']}, flagged (outside the MAPE)"
        rows.append((f["key"], f["source"], f["configuration"], f["method"],
                     f"{f['generation']} ({f['date']})", f["metric"],
                     f"{f['published']:,.2f}", f"{f['emulated']:,.2f}",
                     f"{100 * f['error']:+.1f} %", use, f["note"]))
    return Tabular("reference figures against the models", ("figure", "source", "configuration",
                   "method", "software (date)", "metric", "published", "emulated", "error",
                   "use", "note"), tuple(rows))


def constant_table(report: dict[str, Any]) -> Tabular:
    """The fitted constants of ``report`` beside the catalog's (in the unit named per row)."""
    rows = []
    for c in report["constants"]:
        scale = {"us": 1e6, "ms": 1e3}.get(c["unit"], 1.0)
        bound = " (at bound)" if c["at_bound"] else ""
        rows.append((c["hardware"], c["field"], f"{c['fitted'] * scale:.4g}{bound}",
                     f"{c['catalog'] * scale:.4g}", c["unit"], c["meaning"]))
    return Tabular("fitted constants (least squares; the catalog stores them rounded)",
                   ("hardware", "constant", "fitted", "catalog", "unit", "meaning"), tuple(rows))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def mape_line(report: dict[str, Any]) -> str:
    """The MAPEs over fitted and over predicted figures, as one sentence."""
    m = report["mape"]
    return (f"MAPE over fitted figures: {_pct(m['fit'])}; over predicted figures: "
            f"{_pct(m['predict'])} (comparable ones; {_pct(m['predict_including_not_comparable'])}"
            " including figures measured under conditions the models do not emulate)")

"""Print docs/calibration.md's generated block: every reference figure against the models (with
its method and software generation), the MAPE over fitted and over predicted figures, and the
fitted constants, as Markdown (``python benchmarks/calibration_table.py``)."""

from __future__ import annotations

from disagg.cluster.hardware.calibration import calibration_rows
from disagg.cluster.hardware.fit import fit_all
from disagg.experiments.view.calibration import calibration_report, mape_line


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def markdown() -> str:
    """The block's Markdown."""
    report = calibration_report(calibration_rows(), fit_all())
    lines = ["| figure | configuration | method | software (date) | metric | published | "
             "emulated | error | use |", "|---|---|---|---|---|---:|---:|---:|---|"]
    for f in report["figures"]:
        use = f["use"] if f["comparable"] else f"{f['use']}, flagged (outside the MAPE)"
        note = f" — {f['note']}" if f["note"] else ""
        lines.append(_row((f"`{f['key']}`", f"{f['configuration']}{note} ({f['source']})",
                           f["method"], f"{f['generation']} ({f['date']})", f["metric"],
                           f"{f['published']:,.2f}", f"{f['emulated']:,.2f}",
                           f"{100 * f['error']:+.1f} %", use)))
    lines += ["", f"**{mape_line(report)}**", "",
              "| hardware | constant | fitted | catalog | unit | meaning |",
              "|---|---|---:|---:|---|---|"]
    for c in report["constants"]:
        scale = {"us": 1e6, "ms": 1e3}.get(c["unit"], 1.0)
        bound = " (at bound)" if c["at_bound"] else ""
        lines.append(_row((c["hardware"], f"`{c['field']}`", f"{c['fitted'] * scale:.4g}{bound}",
                           f"{c['catalog'] * scale:.4g}", c["unit"], c["meaning"])))
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())

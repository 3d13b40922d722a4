"""Print docs/accuracy.md's generated block: every accuracy case (``disagg accuracy``) against its
published figure, with the MAPE over fitted and over predicted cases, as Markdown."""

from __future__ import annotations

from disagg.experiments.cli.accuracy import accuracy_report, mape_line
from disagg.experiments.compare.accuracy import cases, run_case


def markdown() -> str:
    """The block's Markdown."""
    report = accuracy_report([run_case(c) for c in cases()])
    lines = ["| case | experiment | configuration | method | metric | published | emulated | "
             "error | set |", "|---|---|---|---|---|---:|---:|---:|---|"]
    for c in report["cases"]:
        over = ", ".join(f"{k}={v}" for k, v in c["overrides"].items())
        lines.append(f"| `{c['key']}` | `{c['experiment']}` {over} | {c['configuration']} | "
                     f"{c['method']} | {c['metric']} | {c['published']:,.2f} | "
                     f"{c['emulated']:,.2f} | {100 * c['error']:+.1f} % | {c['set']} |")
    return "\n".join(lines + ["", f"**{mape_line(report)}**"])


if __name__ == "__main__":
    print(markdown())

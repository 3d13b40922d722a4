"""What a plan writes: plan.parquet (one row per candidate), frontier.csv, best.toml (the
winning candidate as a ready-to-run experiment at the capacity found), report.md and a
self-contained report.html with the frontier plot (matplotlib PNG embedded as base64); the
report's content is :mod:`disagg.experiments.plan.report`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from disagg.cluster.config import Experiment
from disagg.experiments.plan.report import UNITS, best, html_page, markdown, plan_report
from disagg.experiments.plan.search import EVALUATED, Evaluation
from disagg.experiments.results.writing import config_toml

def write_table(rows: list[Evaluation], path: Path) -> None:
    """plan.parquet: every candidate's row (null where not measured)."""
    dicts = [r.row() for r in rows]
    pq.write_table(pa.Table.from_pylist(dicts), path)


def write_frontier_csv(front: list[Evaluation], path: Path) -> None:
    """frontier.csv: the Pareto frontier, cheapest first."""
    cols = ["label", "family", "denominator", "capacity_per_s", "objective", "usd_per_hour",
            "power_kw", "racks", "key"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in front:
            row = r.row()
            w.writerow([row[c] for c in cols])


def _points(rows: Iterable[Evaluation]) -> tuple[list[float], list[float]]:
    """(denominator, capacity req/s) of the rows that have a denominator, as plot coordinates."""
    pairs = [(r.denominator, r.capacity_per_s or 0.0) for r in rows if r.denominator is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def frontier_plot(rows: list[Evaluation], front: list[Evaluation], metric: str) -> bytes:
    """Capacity against the objective's denominator: every evaluated candidate by family, the
    frontier as a line."""
    denom_label = UNITS[metric][0]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for fam in dict.fromkeys(r.candidate.family for r in rows):
        pts = _points(r for r in rows if r.candidate.family == fam and r.status == EVALUATED)
        if pts[0]:  # a family whose every candidate was pruned or refused has no point to show
            ax.scatter(*pts, label=fam, alpha=0.7)
    skipped = sum(1 for r in rows if r.status != EVALUATED)
    ax.set_title(f"{len(rows) - skipped} candidates measured, {skipped} not run (pruned as "
                 "dominated, over a constraint or infeasible: see report)", fontsize=9)
    ax.plot(*_points(front), "k--", label="frontier")
    ax.set_xlabel(denom_label)
    ax.set_ylabel("capacity at the SLO target, req/s")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def at_capacity(exp: Experiment, capacity_per_s: float | None) -> Experiment:
    """``exp`` with its arrival rate set to the plan's capacity (req/s), so that best.toml runs
    at the rate the plan found; unchanged if the workload has no rate or no capacity was found."""
    if not capacity_per_s or "rate_per_s" not in type(exp.workload).model_fields:
        return exp
    fields = exp.workload.model_dump()
    fields["rate_per_s"] = capacity_per_s
    if fields.get("speedup") is not None:
        fields["speedup"] = None  # a trace replayed at the capacity rate instead
    return exp.model_copy(update={"workload": type(exp.workload).model_validate(fields)})


def write_outputs(out_dir: Path, rows: list[Evaluation], front: list[Evaluation], metric: str,
                  experiments: dict[str, Experiment], title: str) -> Evaluation | None:
    """Every output file into ``out_dir``; returns the winner (None if nothing was measured)."""
    write_table(rows, out_dir / "plan.parquet")
    write_frontier_csv(front, out_dir / "frontier.csv")
    report = plan_report(rows, front, metric, title)
    (out_dir / "report.md").write_text(markdown(report), encoding="utf-8")
    (out_dir / "report.html").write_text(html_page(report, frontier_plot(rows, front, metric)),
                                         encoding="utf-8")
    winner = best(rows)
    if winner is not None:
        exp = at_capacity(experiments[winner.candidate.key], winner.capacity_per_s)
        header = (f"# The best candidate of plan {title!r}: {winner.candidate.label}\n"
                  f"# capacity {winner.capacity_per_s:.4g} req/s at the SLO target; "
                  f"{metric} = {winner.objective:.4g}\n"
                  f"# workload.rate_per_s is that capacity (the rate the plan found)\n")
        (out_dir / "best.toml").write_text(header + config_toml(exp), encoding="utf-8")
    return winner

"""The plan's report as data (headline, tables), rendered as report.md (Markdown) and as
report.html (real HTML tables, the frontier plot inline): one content, two renderings."""

from __future__ import annotations

from dataclasses import dataclass

from disagg.experiments.compare import html as h
from disagg.experiments.plan.search import EVALUATED, Evaluation

UNITS = {"goodput_per_dollar": ("USD per hour", "req/s per USD/h"),
         "goodput_per_watt": ("kW", "req/s per kW"),
         "goodput_per_rack": ("racks", "req/s per rack"),
         "tasks_per_dollar": ("USD per hour", "tasks per USD")}


@dataclass(frozen=True)
class Section:
    """One titled table of the report: a note, column names and rows of text."""

    title: str
    note: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left: tuple[int, ...] = (0,)  # text columns (left-aligned); the rest are numbers


@dataclass(frozen=True)
class PlanReport:
    """The report's content: title, one-line summary, the winner sentence, tables."""

    title: str
    summary: str
    winner: str | None
    sections: tuple[Section, ...]


def best(rows: list[Evaluation]) -> Evaluation | None:
    """The evaluated candidate with the highest objective (ties: cheaper, then key)."""
    ok = [r for r in rows if r.status == EVALUATED and r.objective is not None]
    return max(ok, key=lambda r: (r.objective or 0.0, -(r.denominator or 0), r.candidate.key),
               default=None)


def best_per_family(rows: list[Evaluation]) -> dict[str, Evaluation]:
    """The best candidate of each family that has an evaluated one."""
    out: dict[str, Evaluation] = {}
    for fam in dict.fromkeys(r.candidate.family for r in rows):
        winner = best([r for r in rows if r.candidate.family == fam])
        if winner is not None:
            out[fam] = winner
    return out


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def plan_report(rows: list[Evaluation], front: list[Evaluation], metric: str,
                title: str) -> PlanReport:
    """What the plan found: counts per status, the winner, the best per family, the frontier and
    every candidate with its outcome."""
    denom, unit = UNITS[metric]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = (f"Objective: {metric} ({unit}); candidates: {len(rows)} — "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    w = best(rows)
    winner = None if w is None else (
        f"Best: {w.candidate.label} — {w.capacity_per_s:.3g} req/s at {w.denominator:.4g} {denom} "
        f"= {w.objective:.4g} {unit} (written as best.toml, at that rate)")
    fams = Section("Best per family", "", ("family", "candidate", "capacity req/s", denom, unit),
                   tuple((f, r.candidate.label, _num(r.capacity_per_s, ".3g"), _num(r.denominator),
                          _num(r.objective)) for f, r in best_per_family(rows).items()), (0, 1))
    frontier = Section("Pareto frontier (cheapest first)", "Candidates no other beats on both "
                       f"capacity and {denom}.", ("candidate", denom, "capacity req/s"),
                       tuple((r.candidate.label, _num(r.denominator), _num(r.capacity_per_s, ".3g"))
                             for r in front))
    ordered = sorted(rows, key=lambda r: (r.status != EVALUATED, -(r.objective or 0.0)))
    every = Section("Every candidate", "Evaluated ones by objective, then those not run and why.",
                    ("candidate", "status", "capacity req/s", denom, unit, "runs", "reason"),
                    tuple((r.candidate.label, r.status, _num(r.capacity_per_s, ".3g"),
                           _num(r.denominator), _num(r.objective), str(r.runs), r.reason)
                          for r in ordered), (0, 1, 6))
    return PlanReport(f"Plan: {title}", summary, winner, (fams, frontier, every))


def markdown(report: PlanReport) -> str:
    """report.md."""
    lines = [f"# {report.title}", "", report.summary, ""]
    if report.winner:
        lines += [report.winner.replace("Best: ", "Best: **", 1).replace(" — ", "** — ", 1), ""]
    for s in report.sections:
        lines += [f"## {s.title}", ""] + ([s.note, ""] if s.note else [])
        lines += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in s.rows]
        lines.append("")
    return "\n".join(lines)


def html_page(report: PlanReport, plot_png: bytes) -> str:
    """report.html: the headline, the frontier plot, then the tables as HTML tables."""
    head = f"<p class=\"lead\">{h.e(report.summary)}</p>"
    if report.winner:
        head += f"<p class=\"lead\"><b>{h.e(report.winner)}</b></p>"
    body = head + h.figures([("capacity against " + report.sections[1].header[1]
                              + " (frontier dashed)", plot_png)])
    for s in report.sections:
        body += f"<h2>{h.e(s.title)}</h2>" + (h.note(s.note) if s.note else "")
        body += h.table(s.header, s.rows, s.left)
    return h.page(report.title, body)

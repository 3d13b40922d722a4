"""One plan from start to outputs: check everything before any run, keep the plan folder's
journal (so ``--resume`` skips finished candidates and an interrupt loses nothing finished), run
the search, and write the outputs — also when interrupted, from what has finished."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from disagg.actors.engines.parallel import parallel_session
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.plan.bounds import workload_shape
from disagg.experiments.plan.candidates import enumerate_candidates
from disagg.experiments.plan.output import write_outputs
from disagg.experiments.plan.search import (
    Evaluation,
    Progress,
    frontier,
    prepare,
    read_journal,
    search,
)
from disagg.experiments.plan.space import SearchSpace
from disagg.experiments.results.writing import config_toml

MARKER = ".disagg-plan.json"
JOURNAL = "evaluations.jsonl"


@dataclass(frozen=True)
class PlanResult:
    """A finished (or interrupted) plan: every row, the frontier, the winner, where it is."""

    rows: list[Evaluation]
    front: list[Evaluation]
    winner: Evaluation | None
    out_dir: Path
    resumed: int  # candidates taken from an earlier, interrupted run
    stopped: bool = False  # a stop request ended the search early (resume it with --resume)


def fingerprint(base: Experiment, space: SearchSpace) -> str:
    """What the plan depends on: the resolved experiment and the search space (not its
    ``[robust]`` table: robust evaluations are cached per candidate and point, whatever it says)."""
    text = config_toml(base) + json.dumps(space.model_dump(mode="json", exclude={"robust"}),
                                          sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def open_folder(out_dir: Path, print_: str, resume: bool) -> None:
    """Create the plan folder, or reopen it with ``resume``; refuse anything else (exit 2)."""
    marker = out_dir / MARKER
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} exists and is not a folder; allowed: a new folder")
    if out_dir.exists():
        if not marker.exists():  # a user's folder, even an empty one, is never written into
            raise ConfigError(f"--out: {out_dir} exists and was not written by disagg plan; "
                              "allowed: a new folder")
        if not resume:
            raise ConfigError(f"--out: {out_dir} holds an earlier plan; allowed: --resume to "
                              "continue it, or another --out")
        stored = json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
        if stored != print_:
            raise ConfigError(f"--resume: {out_dir} holds a plan of another experiment or search "
                              "space; allowed: the same files, or another --out")
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": print_}) + "\n", encoding="utf-8")
    except OSError as e:  # read-only, under a file, disk full: before any candidate runs
        raise ConfigError(f"--out: value '{out_dir}' cannot be written ([Errno {e.errno}] "
                          f"{e.strerror}); allowed: a path in a writable folder") from None


def run_plan(base: Experiment, space: SearchSpace, out_dir: Path, resume: bool = False,
             use_ray: bool = True, address: str | None = None,
             progress: Progress | None = None, stop: StopFlag | None = None) -> PlanResult:
    """Check, search and write a plan; see the module docstring. A ``stop`` request (first
    Ctrl-C) lets the candidates in flight finish and writes the outputs of what finished."""
    if "rate_per_s" not in type(base.workload).model_fields:
        raise ConfigError(f"workload.kind: value {base.workload.kind!r} has no arrival rate to "
                          "plan for; allowed: synthetic, mix or trace workloads")
    prepared = prepare(base, enumerate_candidates(space, base), space, workload_shape(base))
    open_folder(out_dir, fingerprint(base, space), resume)
    journal = out_dir / JOURNAL
    resumed = read_journal(journal)
    experiments = {p.candidate.key: p.experiment for p in prepared}
    try:
        with parallel_session(use_ray, address) as width:
            rows = search(prepared, space, journal, resumed, use_ray, width, progress, stop)
    except KeyboardInterrupt:
        done = {e.candidate.key: e for e in read_journal(journal)}
        rows = [done[p.candidate.key] for p in prepared if p.candidate.key in done]
        write_outputs(out_dir, rows, frontier(rows), space.objective.maximize, experiments,
                      base.experiment.name)
        raise
    front = frontier(rows)
    winner = write_outputs(out_dir, rows, front, space.objective.maximize, experiments,
                           base.experiment.name)
    return PlanResult(rows, front, winner, out_dir, len(resumed),
                      stop is not None and stop.requested)

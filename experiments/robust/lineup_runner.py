"""``disagg compare A.toml B.toml ... --equal ... --robust``: a line-up's decision over the
assumption space. The clusters' hardware and the catalog give the dimensions (narrowed or widened
by the ``[robust]`` table of ``--robust-space FILE``), a seeded Latin hypercube the points; at
every point the clusters are lined up again and run (lineup_eval.py); the analysis
(lineup_core.py) goes to robust.json, robust.parquet and robust.html in the output folder."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from disagg.actors.engines.parallel import parallel_session
from disagg.actors.engines.stop import StopFlag
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.assumptions import assumptions
from disagg.experiments.results.guard import MARKER, marker_bytes
from disagg.experiments.robust.core import latin_hypercube
from disagg.experiments.robust.dimensions import Dimension, RobustSettings, dimensions, parse_settings
from disagg.experiments.robust.lineup_core import LineupAnalysis, analyse_lineup
from disagg.experiments.robust.lineup_eval import JOURNAL, LineupCells, Progress
from disagg.experiments.robust.lineup_output import write_lineup_robust


@dataclass(frozen=True)
class LineupRobustResult:
    """The analysis, where it was written, and how many runs ran / came from the journal."""

    analysis: LineupAnalysis
    out_dir: Path
    runs: int
    cached: int


def load_settings(path: str | None) -> RobustSettings:
    """The ``[robust]`` table of ``--robust-space FILE`` (defaults without one), validated:
    :class:`ConfigError` names the field, the value and what is allowed."""
    if path is None:
        return parse_settings({})
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"--robust-space: value '{path}' cannot be read ({e}); allowed: a TOML "
                          "file with a [robust] table") from None
    extra = sorted(set(raw) - {"robust"})
    if extra or not isinstance(raw.get("robust", {}), dict):
        bad = extra[0] if extra else "robust"
        raise ConfigError(f"--robust-space: field '{bad}': value {raw[bad]!r}; allowed: only a "
                          "[robust] table")
    try:
        return parse_settings(raw.get("robust", {}))
    except ConfigError as e:
        raise ConfigError(str(e).replace("--search [robust]", "--robust-space [robust]", 1)) \
            from None


def experiment_defaults(exps: list[Experiment]) -> dict[str, float]:
    """``hardware.field`` as the clusters set it (a pool's price or power override, a hardware
    field set in the experiment), the first cluster's where several do: each dimension's default."""
    out: dict[str, float] = {}
    for exp in exps:
        for pool in exp.pools.values():
            hw = pool.hardware
            given = {"price_per_hour_usd": pool.price_per_chip_hour_usd or hw.price_per_hour_usd,
                     "power_w": pool.power_per_chip_w or hw.power_w}
            for a in assumptions():
                value = given.get(a.field, getattr(hw, a.field, None))
                if a.hardware == hw.name and value is not None:
                    out.setdefault(f"{a.hardware}.{a.field}", float(value))
    return out


def lineup_dimensions(settings: RobustSettings, exps: list[Experiment],
                      equal: str) -> list[Dimension]:
    """Prices and performance fields of the clusters' hardware; powers only under equal power
    (the only place a power changes what runs)."""
    used = {p.hardware.name for e in exps for p in e.pools.values()}
    spec = any(getattr(p, "speculative", None) is not None for e in exps for p in e.pools.values())
    defaults = experiment_defaults(exps)
    dims = dimensions(settings, used, "goodput_per_dollar", defaults, spec)
    if equal == "power":
        dims += [d for d in dimensions(settings, used, "goodput_per_watt", defaults, spec)
                 if d.kind == "power"]
    return dims


def open_folder(out_dir: Path, resume: bool) -> None:
    """Create the output folder, or with ``resume`` reopen one this command wrote."""
    if out_dir.exists():
        if not resume:
            raise ConfigError(f"--out: value '{out_dir}' already exists; allowed: a new path, "
                              "or --resume to continue a robust line-up written there")
        if not (out_dir / JOURNAL).is_file():
            raise ConfigError(f"--resume: value '{out_dir}' holds no {JOURNAL}; allowed: a "
                              "folder an earlier `disagg compare --robust` wrote")
        return
    out_dir.mkdir(parents=True)
    (out_dir / MARKER).write_bytes(marker_bytes("compare-robust"))
    (out_dir / JOURNAL).touch()


def run_lineup_robust(exps: list[Experiment], sources: list[str], equal: str,
                      rates: list[float] | None, repeats: int, settings: RobustSettings,
                      out_dir: Path, use_ray: bool = True, address: str | None = None,
                      progress: Progress | None = None,
                      stop: StopFlag | None = None) -> LineupRobustResult:
    """Analyse the line-up's decision over the assumption space (see the module docstring);
    :class:`~disagg.experiments.robust.evaluate.RobustStopped` on a stop request."""
    dims = lineup_dimensions(settings, exps, equal)
    if not dims:
        raise ConfigError("--robust: no assumption of the catalog concerns these clusters' "
                          "hardware (or [robust] only= left none); allowed: clusters using "
                          + ", ".join(sorted({a.hardware for a in assumptions()})))
    points = latin_hypercube(dims, settings.samples, settings.seed)
    with parallel_session(use_ray, address) as width:
        cells = LineupCells(out_dir / JOURNAL, exps, sources, equal, rates, repeats, dims,
                            use_ray, width, progress, stop)
        labels = [e.experiment.name for e in exps]
        analysis = analyse_lineup(labels, equal, dims, points, cells)
    write_lineup_robust(out_dir, analysis, settings, " vs ".join(labels))
    return LineupRobustResult(analysis, out_dir, cells.runs, cells.resumed)

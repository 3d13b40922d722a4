"""A comparison's data: the saved runs, one row per (policy, rate, repeat), means with 95%
confidence intervals over repeats, and each policy's capacity.

Rates. A run at a set rate (``--rates`` or the workload's ``rate_per_s``) is offered that rate. A
run of the workload's own arrivals (a trace at its speed, a closed loop: run.json rate 0) is
offered its measured mean arrival rate, requests / arrival span (:func:`offered_rate_per_s`); its
comparison rows, tables and plots show the mean of that over the runs of the comparison (one value,
so the policies still line up in one cell), and each row keeps its own in ``offered_rate_per_s``.

Everything here is computed from the run folders alone (``runs/*/*/*/``: run.json, summary.json,
requests.parquet, timeseries.parquet, config.toml), so ``disagg report`` re-renders a comparison
without running anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from disagg.cluster.config import Experiment, load_experiment
from disagg.cluster.errors import ConfigError
from disagg.experiments.compare.regret import regret_summary, request_regrets_s

TARGET_ATTAINMENT = 0.9


def target_attainment(percentile_form: bool) -> float:
    """The attainment capacity asks for: 0.9 of requests meeting their per-request targets
    (DistServe's 90 %), or 1.0 under percentile / slowdown targets (every target met; see
    ``experiments/results/slo_eval.py``)."""
    return 1.0 if percentile_form else TARGET_ATTAINMENT
# Two-sided 95% Student t critical values t_{0.975, df}, df = 1..30 (NIST/SEMATECH e-Handbook of
# Statistical Methods, section 1.3.6.7.2, "Critical values of the Student's t distribution").
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.960  # normal limit, used for df > 30 (t_{0.975,30} = 2.042, t_{0.975,inf} = 1.960)


@dataclass
class SavedRun:
    """One run folder of a comparison."""

    path: Path
    policy: str
    rate_per_s: float
    repeat: int
    summary: dict[str, Any]
    requests: list[dict[str, Any]]
    timeseries: pa.Table
    experiment: Experiment
    offered_per_s: float | None = None  # this run's own offered rate, when it differs from the cell's


def load_runs(out_dir: Path) -> list[SavedRun]:
    """Every run under ``out_dir/runs``, in the manifest's policy order, then rate and repeat."""
    out_dir = Path(out_dir)
    metas = sorted((out_dir / "runs").glob("*/*/*/run.json"))
    if not metas:
        raise ConfigError(f"{out_dir}: no runs found (expected runs/<policy>/rate-<r>/repeat-<k>/"
                          "run.json); allowed: a folder written by `disagg compare`")
    runs = with_offered_rates([_load_run_checked(m.parent) for m in metas])
    order = {p: i for i, p in enumerate(load_manifest(out_dir).get("policies", []))}
    runs.sort(key=lambda r: (order.get(r.policy, len(order)), r.policy, r.rate_per_s, r.repeat))
    return runs


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """compare.json of a comparison folder ({} when there is none)."""
    path = out_dir / "compare.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}: {e}); allowed: the "
                          "compare.json `disagg compare` wrote") from None


def _load_run_checked(path: Path) -> SavedRun:
    """:func:`_load_run`, with a corrupt or missing file a ConfigError naming the run folder."""
    try:
        return _load_run(path)
    except ConfigError as e:
        raise ConfigError(f"run {path}: {e}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # JSON and Arrow errors are ValueError
        raise ConfigError(f"run {path}: unreadable ({type(e).__name__}: {e}); allowed: a run "
                          "folder as `disagg compare` wrote it") from None


def _load_run(path: Path) -> SavedRun:
    meta = json.loads((path / "run.json").read_text())
    return SavedRun(
        path=path, policy=meta["policy"], rate_per_s=float(meta["rate_per_s"]),
        repeat=int(meta["repeat"]), summary=json.loads((path / "summary.json").read_text()),
        requests=pq.read_table(path / "requests.parquet").to_pylist(),
        timeseries=pq.read_table(path / "timeseries.parquet"),
        experiment=load_experiment(path / "config.toml"),
    )


def offered_rate_per_s(nominal_per_s: float, arrivals_s: list[float], duration_s: float) -> float:
    """The rate a run was offered, requests per emu s: ``nominal_per_s`` when it was set (> 0);
    else (the workload's own arrivals) the number of requests over their arrival span, last
    arrival minus first (over ``duration_s`` when fewer than two requests arrived)."""
    if nominal_per_s > 0:
        return nominal_per_s
    if len(arrivals_s) < 2 or max(arrivals_s) <= min(arrivals_s):
        return len(arrivals_s) / duration_s
    return len(arrivals_s) / (max(arrivals_s) - min(arrivals_s))


def _run_offered(run: SavedRun) -> float:
    return offered_rate_per_s(run.rate_per_s, [r["arrival_s"] for r in run.requests],
                              run.experiment.experiment.duration_s)


def with_offered_rates(runs: list[SavedRun]) -> list[SavedRun]:
    """``runs`` with a rate of 0 (the workload's own arrivals) replaced by the mean offered rate
    of those runs, in place; returns them."""
    own = [r for r in runs if r.rate_per_s <= 0]
    if own:
        mean = float(np.mean([_run_offered(r) for r in own]))
        for r in own:
            r.offered_per_s = _run_offered(r)
            r.rate_per_s = mean
    return runs


def policies(runs: list[SavedRun]) -> list[str]:
    return list(dict.fromkeys(r.policy for r in runs))


def rates(runs: list[SavedRun]) -> list[float]:
    return sorted({r.rate_per_s for r in runs})


def run_row(run: SavedRun, out_dir: Path) -> dict[str, Any]:
    """One comparison.parquet row: identifiers, every summary.json key (nested ones as JSON
    text) and the run's router regret."""
    offered = run.rate_per_s if run.offered_per_s is None else run.offered_per_s
    row: dict[str, Any] = {"policy": run.policy, "rate_per_s": run.rate_per_s,
                           "offered_rate_per_s": offered, "workload_rate": run.offered_per_s is not None,
                           "repeat": run.repeat, "run_dir": str(run.path.relative_to(out_dir))}
    for key, value in run.summary.items():
        row[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
    row.update(regret_summary(request_regrets_s(run.requests, run.experiment)))
    return row


def comparison_table(rows: list[dict[str, Any]]) -> pa.Table:
    """comparison.parquet: columns are the union of the rows' keys (missing values null);
    integer columns stay int64, other numeric columns float64, the rest as Arrow infers."""
    cols = {}
    for k in dict.fromkeys(k for r in rows for k in r):
        values = [r.get(k) for r in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            cols[k] = pa.array(values, pa.int64())
        elif present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            cols[k] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        else:
            cols[k] = pa.array(values)
    return pa.table(cols)


def t_critical(df: int) -> float:
    """Two-sided 95% Student t critical value for ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else _Z975


@dataclass(frozen=True)
class Estimate:
    """Mean over repeats and the half-width of its 95% confidence interval (None if n < 2)."""

    mean: float | None
    ci: float | None
    n: int


def estimate(values: list[Any]) -> Estimate:
    """Mean ± t_{0.975, n-1} · s / sqrt(n) of the non-null values (None if any run lacks it)."""
    if not values or any(v is None for v in values):
        return Estimate(None, None, len(values))
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return Estimate(float(v.mean()), None, 1)
    return Estimate(float(v.mean()), float(t_critical(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))),
                    len(v))


def cell_estimates(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, float], Estimate]:
    """(policy, rate) -> estimate of column ``key`` over the repeats."""
    cells: dict[tuple[str, float], list[Any]] = {}
    for r in rows:
        cells.setdefault((r["policy"], r["rate_per_s"]), []).append(r.get(key))
    return {cell: estimate(values) for cell, values in cells.items()}


def capacity(rows: list[dict[str, Any]], target: float = TARGET_ATTAINMENT) -> dict[str, float | None]:
    """Per policy, the highest offered rate whose mean SLO attainment over repeats is >=
    ``target`` with every lower tested rate also >= ``target`` (None if even the lowest rate
    misses it). A cell's offered rate is the mean of its runs' ``offered_rate_per_s``: the set
    rate, or for the workload's own arrivals (no rate sweep) the rate each run was offered — so a
    comparison without a sweep reports, per policy, the rate it was offered when it met the
    target (a lower bound on its capacity)."""
    att = cell_estimates(rows, "slo_attainment")
    offered = cell_estimates(rows, "offered_rate_per_s")
    out: dict[str, float | None] = {}
    for policy in dict.fromkeys(r["policy"] for r in rows):
        best = None
        for rate in sorted(rate for p, rate in att if p == policy):
            mean = att[(policy, rate)].mean
            if mean is None or mean < target:
                break
            best = offered[(policy, rate)].mean
            best = rate if best is None else best
        out[policy] = best
    return out

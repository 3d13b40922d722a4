"""Content digests of ``requests.parquet``, one per column: the golden check that the virtual
engine gives the same results for the same seed (tests/test_golden_virtual.py).

A column's digest is the first 16 hex digits of the SHA-256 of its name and the ``repr`` of its
values as Python objects (floats in full precision, None for nulls), so a digest changes with any
value, type or row order, and a mismatch names the column. The golden file holds, per experiment
file, the emu seconds of arrivals it was run for, the row count and the column digests.

Regenerate the checked-in digests (after a change that is meant to alter results, e.g. refitted
performance constants) with::

    python -m disagg.experiments.results.digest --update tests/golden/virtual_requests.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from disagg.cluster.config import load_experiment
from disagg.experiments.run import run_experiment

# experiment file (relative to the repository) -> emu seconds of arrivals it is checked for
GOLDEN_RUNS: dict[str, float] = {
    "experiments/quickstart.toml": 20.0,
    "experiments/fabric_layerwise.toml": 20.0,
    "experiments/closed_loop_chat.toml": 20.0,
}


def column_digests(table: pa.Table) -> dict[str, str]:
    """Column name -> 16 hex digits of SHA-256 over the name and the repr of its values."""
    out = {}
    for name in table.column_names:
        h = hashlib.sha256(name.encode())
        h.update(repr(table.column(name).to_pylist()).encode())
        out[name] = h.hexdigest()[:16]
    return out


def virtual_run_digest(experiment: Path, duration_s: float) -> dict[str, Any]:
    """Run ``experiment`` on the virtual engine for ``duration_s`` emu seconds of arrivals and
    digest the ``requests.parquet`` it writes: ``{"duration_s", "rows", "columns"}``."""
    exp = load_experiment(experiment, {"experiment.engine": "virtual",
                                       "experiment.duration_s": duration_s})
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(exp, out_dir=Path(tmp) / "run")
        table = pq.read_table(Path(tmp) / "run" / "requests.parquet")
    return {"duration_s": duration_s, "rows": table.num_rows, "columns": column_digests(table)}


def golden_digests(repo: Path) -> dict[str, dict[str, Any]]:
    """The digests of every run in :data:`GOLDEN_RUNS`, keyed by experiment file."""
    return {name: virtual_run_digest(repo / name, duration_s)
            for name, duration_s in GOLDEN_RUNS.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the golden digests as JSON, or write them to ``--update PATH``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root (default: .)")
    ap.add_argument("--update", type=Path, help="write the digests to this JSON file")
    args = ap.parse_args(argv)
    text = json.dumps(golden_digests(args.repo), indent=2, sort_keys=True) + "\n"
    if args.update is None:
        print(text, end="")
    else:
        args.update.parent.mkdir(parents=True, exist_ok=True)
        args.update.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ray engine on the shared Ray fixture: results contract, fidelity against the virtual
engine, real payload verification."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from disagg.cluster.config import load_experiment
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray
QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def test_quickstart_on_ray_matches_virtual_and_catches_tampering(ray_cluster, tmp_path) -> None:
    overrides = {"experiment.duration_s": 8.0, "experiment.dilation": 1.0,
                 "faults.corrupt_kv_requests": [3]}
    ray_exp = load_experiment(QUICKSTART, {**overrides, "experiment.engine": "ray"})
    virt_exp = load_experiment(QUICKSTART, {**overrides, "experiment.engine": "virtual"})
    real = run_experiment(ray_exp, tmp_path / "ray")
    ref = run_experiment(virt_exp)

    rows = pq.read_table(tmp_path / "ray" / "requests.parquet").to_pylist()
    assert len(rows) == real.summary["submitted"] > 10
    by_id = {r["request_id"]: r for r in rows}
    assert (by_id[3]["status"], by_id[3]["reason"]) == ("failed", "kv_checksum")
    assert all(r["status"] == "completed" for r in rows if r["request_id"] != 3)

    s, v = real.summary, ref.summary
    assert s["mean_ttft_ms"] == pytest.approx(v["mean_ttft_ms"], rel=0.05)
    assert s["output_throughput"] == pytest.approx(v["output_throughput"], rel=0.05)
    assert s["lag_p50_ms"] >= 0 and s["lag_p99_ms"] >= s["lag_p50_ms"]

    transfers = pq.read_table(tmp_path / "ray" / "transfers.parquet").to_pylist()
    assert len(transfers) == len(rows)
    done = [t for t in transfers if t["request_id"] != 3]
    assert all(t["real_end_s"] is not None and t["real_end_s"] >= t["start_s"] for t in done)
    assert all(t["real_bytes"] > 0 for t in done)


def test_cli_run_on_ray_writes_the_five_files(ray_cluster, tmp_path, capsys) -> None:
    out = tmp_path / "qs"
    code = main(["run", str(QUICKSTART), "--duration", "3", "--dilation", "0.5", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".disagg-results", "config.toml", "requests.parquet", "summary.json", "timeseries.parquet",
        "transfers.parquet"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["dilation"] == 0.5
    assert {"lag_p50_ms", "lag_p99_ms", "mean_ttft_ms", "p99_itl_ms"} <= set(summary)
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(rows) == summary["submitted"] and all(r["status"] == "completed" for r in rows)
    assert "results in" in capsys.readouterr().out
    # the resolved config runs again as it is
    assert load_experiment(out / "config.toml").experiment.dilation == 0.5

"""`disagg capacity`: bisection from the command line agrees with the library function."""

from __future__ import annotations

import re
from pathlib import Path

import tomli_w
from conftest import experiment_dict

from disagg.cluster.config import load_experiment
from disagg.experiments.cli.main import main
from disagg.experiments.compare.capacity import bisect_capacity

ROOT = Path(__file__).resolve().parents[1]


def test_capacity_command_matches_bisection(tmp_path, capsys) -> None:
    raw = experiment_dict(experiment__duration_s=10.0, slo__ttft_s=0.3,
                          workload__prompt_tokens={"kind": "fixed", "value": 1000},
                          workload__output_tokens={"kind": "fixed", "value": 50})
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(raw))
    assert main(["capacity", str(path), "--lo", "2", "--hi", "40", "--tol", "2"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"capacity: ([0-9.]+) req/s", out)
    assert found, out
    expected = bisect_capacity(load_experiment(path), 2.0, 40.0, 2.0)
    assert expected is not None and float(found.group(1)) == round(expected, 3)
    assert 2 < expected < 40


def test_capacity_refuses_a_workload_without_a_rate(capsys) -> None:
    assert main(["capacity", str(ROOT / "experiments" / "closed_loop_chat.toml")]) == 2
    assert "no arrival rate" in capsys.readouterr().err

"""Every fault kind against every unit kind (cluster/faults.py FAULT_UNIT_KINDS): a pair the
table accepts runs to its end on the virtual engine with the results invariants holding; a pair
it refuses fails `disagg validate` with exit 2 and one line naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.faults import FAULT_UNIT_KINDS, UNIT_KINDS
from disagg.experiments.cli.main import main
from disagg.experiments.results.invariants import check_results
from disagg.experiments.run import run_experiment

POOL = {"hardware": "h100", "chips_per_unit": 1, "units": 2, "units_per_host": 1}
BASE: dict[str, Any] = {
    "experiment": {"name": "faults", "seed": 3, "duration_s": 1.0, "engine": "virtual"},
    "model": "llama-3.1-8b",
    "workload": {"rate_per_s": 20.0, "arrivals": {"kind": "constant"}, "prompt_tokens": {"kind": "fixed", "value": 256},
                 "output_tokens": {"kind": "fixed", "value": 32}},
    "slo": {"ttft_s": 10.0, "tpot_s": 1.0},
}


def _entry(kind: str, unit_kind: str) -> dict[str, Any]:
    """One ``[[faults]]`` table of ``kind`` aimed at a unit (or host) of ``unit_kind``."""
    side = "ingress" if unit_kind == "decode" else "egress"
    return {
        "unit_loss": {"unit": f"{unit_kind}-0", "at_s": 0.5, "restart_after_s": 0.3},
        "host_loss": {"host": f"{unit_kind}-host-0", "at_s": 0.5},
        "straggler": {"unit": f"{unit_kind}-0", "factor": 3.0, "from_s": 0.2, "to_s": 0.8},
        "link": {"link": f"{unit_kind}-host-0/{side}", "factor": 0.1, "from_s": 0.2,
                 "to_s": 0.6},
        "kv_drop": {"requests": [1]},
        "kv_corrupt": {"requests": [1]},
    }[kind] | {"kind": kind}


def _raw(kind: str, unit_kind: str) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    if unit_kind == "colocated":
        raw["colocated"] = dict(POOL)
    else:
        raw["prefill"], raw["decode"] = dict(POOL), dict(POOL)
    raw["faults"] = [_entry(kind, unit_kind)]
    return raw


PAIRS = [(k, u) for k in FAULT_UNIT_KINDS for u in UNIT_KINDS]
ACCEPTED = [(k, u) for k, u in PAIRS if u in FAULT_UNIT_KINDS[k]]
REFUSED = [(k, u) for k, u in PAIRS if u not in FAULT_UNIT_KINDS[k]]
KV_REASON = {"kv_drop": "kv_missing", "kv_corrupt": "kv_checksum"}


def test_the_table_refuses_only_what_a_colocated_run_cannot_do() -> None:
    # a colocated unit makes no KV payload and sends nothing over the fabric
    assert REFUSED == [("link", "colocated"), ("kv_drop", "colocated"),
                       ("kv_corrupt", "colocated")]


@pytest.mark.parametrize(("kind", "unit_kind"), ACCEPTED)
def test_an_accepted_fault_runs_to_the_end_with_the_invariants_holding(
        kind: str, unit_kind: str) -> None:
    exp = experiment_from_dict(_raw(kind, unit_kind))
    result = run_experiment(exp)
    rows = result.tables["requests"].to_pylist()
    assert len(rows) == result.summary["submitted"] >= 19  # one every 0.05 s for 1 s
    assert result.summary["completed"] > 0
    assert check_results(exp, result.tables["requests"], result.tables["transfers"],
                         result.summary) == []
    if kind in KV_REASON:
        hit = next(r for r in rows if r["request_id"] == 1)
        assert (hit["status"], hit["reason"]) == ("failed", KV_REASON[kind])
    else:  # the timed faults were played (summary.json lists each action)
        played = " | ".join(result.summary["faults"])
        assert {"unit_loss": f"{unit_kind}-0 lost", "host_loss": f"{unit_kind}-0 lost",
                "straggler": f"{unit_kind}-0 speed: durations x 3",
                "link": "capacity x 0.1"}[kind] in played


@pytest.mark.parametrize(("kind", "unit_kind"), REFUSED)
def test_a_refused_fault_fails_validation_with_one_line(
        kind: str, unit_kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(_raw(kind, unit_kind)))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"field 'faults.0.kind': value '{kind}'" in err[0]
    assert "colocated" in err[0] and "allowed" in err[0]

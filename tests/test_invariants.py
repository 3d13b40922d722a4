"""The results invariant checker (experiments/results/invariants.py): hand-made tables whose
violations are known by construction, `disagg check`, and the decode over-capacity regression."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from conftest import make_experiment

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import CapacityExceeded
from disagg.experiments.cli.main import main
from disagg.experiments.results.invariants import (
    check_causality,
    check_ledger,
    check_results,
    decode_batch_cap,
    peak_overlap,
)
from disagg.experiments.results.tables import requests_table, transfers_table
from disagg.experiments.run import run_experiment

# /tmp/repro/overload.toml: 20 requests of 512/200 tokens in 0.2 s onto one decode unit capped at 4
OVERLOAD: dict[str, Any] = {
    "experiment": {"name": "overload", "seed": 1, "duration_s": 0.2, "engine": "virtual"},
    "model": {"name": "llama-3.1-8b"},
    "prefill": {"hardware": "h100", "chips_per_unit": 1, "units": 4},
    "decode": {"hardware": "h100", "chips_per_unit": 1, "units": 1},
    "workload": {"rate_per_s": 100.0, "arrivals": {"kind": "constant"},
                 "prompt_tokens": {"kind": "fixed", "value": 512},
                 "output_tokens": {"kind": "fixed", "value": 200}},
    "slo": {"ttft_s": 10.0, "tpot_s": 1.0},
    "policies": {"router": "round_robin",
                 "decode_admission": {"name": "fcfs", "max_batch_requests": 4}},
}


def _row(rid: int, **fields: Any) -> dict[str, Any]:
    """A completed request row that is consistent by hand (times in emu s)."""
    row = {"request_id": rid, "status": "completed", "reason": "", "prompt_tokens": 10,
           "output_tokens": 5, "arrival_s": 0.0, "prefill_start_s": 0.1, "first_token_s": 0.2,
           "transfer_start_s": 0.2, "transfer_end_s": 0.3, "decode_start_s": 0.3,
           "last_token_s": 1.0, "attempts": 1, "end_s": 1.0, "decode_unit": "decode-0"}
    row.update(fields)
    return row


def test_peak_overlap_counts_releases_before_admissions_at_one_instant() -> None:
    # [0, 1), [1, 2), [0.5, 1.5): at most 2 at once (the first ends as the second starts)
    peak, at = peak_overlap(np.array([0.0, 1.0, 0.5]), np.array([1.0, 2.0, 1.5]), np.ones(3))
    assert (peak, at) == (2.0, 0.5)
    # the same with rounding noise far below TIME_EPS_S on the shared instant
    peak, _ = peak_overlap(np.array([0.0, 1.0 - 1e-13]), np.array([1.0, 2.0]), np.ones(2))
    assert peak == 1.0
    peak, _ = peak_overlap(np.array([0.0, 0.9]), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert peak == 7.0


def test_the_ledger_catches_duplicates_unknown_statuses_and_wrong_counts() -> None:
    rows = [_row(0), _row(0), _row(1, status="lost"), _row(2, last_token_s=None)]
    summary = {"submitted": 4, "completed": 2, "rejected": 0, "failed": 0, "cancelled": 0}
    found = [v.describe() for v in check_ledger(rows, summary)]
    assert any("more than one row: [0]" in f for f in found)
    assert any("request 1: status 'lost'" in f for f in found)
    assert any("request 2: completed without" in f for f in found)
    assert "ledger: summary.json completed = 2, requests.parquet has 3" in found
    ok = [_row(0), _row(1, status="rejected", first_token_s=None, last_token_s=None)]
    assert check_ledger(ok, {"submitted": 2, "completed": 1, "rejected": 1, "failed": 0,
                             "cancelled": 0}) == []


def test_causality_names_the_out_of_order_fields() -> None:
    exp = make_experiment()
    rows = [_row(0), _row(1, decode_start_s=0.25), _row(2, prefill_start_s=-0.1)]
    found = [v.describe() for v in check_causality(exp, rows)]
    assert found == ["causality request 1: transfer_end_s 0.300000000 after decode_start_s "
                     "0.250000000",
                     "causality request 2: arrival_s 0.000000000 after prefill_start_s "
                     "-0.100000000"]
    # layer-wise streaming: the transfer may start at the prefill batch's start
    streamed = make_experiment(fabric__layer_wise=True)
    assert check_causality(streamed, [_row(0, transfer_start_s=0.1)]) == []
    assert len(check_causality(exp, [_row(0, transfer_start_s=0.1)])) == 1


def test_batch_cap_and_kv_capacity_on_hand_made_rows() -> None:
    exp = make_experiment(policies__decode_admission={"name": "fcfs", "max_batch_requests": 2})
    assert decode_batch_cap(exp) == 2
    assert decode_batch_cap(make_experiment()) == 256  # the fcfs policy's default
    rows = [_row(i, decode_start_s=0.3 + 0.01 * i, kv_bytes=None) for i in range(3)]
    table = requests_table(rows)
    found = check_results(exp, table, transfers_table([]), {})
    assert [v.describe() for v in found if v.invariant == "batch_cap"] == [
        "batch_cap decode-0: 3 requests running at 0.320000 s; max_batch_requests = 2"]
    # 3 requests of 10 + 5 tokens of a 70B model: capacity far above, no kv_capacity violation
    assert not [v for v in found if v.invariant == "kv_capacity"]


def test_conservation_compares_transfers_with_kv_bytes(tmp_path: Path) -> None:
    exp = make_experiment(experiment__duration_s=2.0)
    result = run_experiment(exp)
    requests, transfers = result.tables["requests"], result.tables["transfers"]
    assert check_results(exp, requests, transfers, result.summary) == []
    halved = transfers.set_column(
        transfers.column_names.index("modeled_bytes"), "modeled_bytes",
        pc.multiply(transfers["modeled_bytes"], 0.5))
    found = check_results(exp, requests, halved, result.summary)
    assert found and all(v.invariant == "conservation" for v in found)
    summary = {**result.summary, "total_output_tokens": result.summary["total_output_tokens"] + 1}
    assert [v.invariant for v in check_results(exp, requests, transfers, summary)] == \
        ["conservation"]


def test_disagg_check_exits_0_on_a_clean_run_and_2_on_a_folder_without_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    run_experiment(make_experiment(experiment__duration_s=2.0), out)
    assert main(["check", str(out)]) == 0
    assert "every invariant holds" in capsys.readouterr().out
    assert main(["check", str(tmp_path)]) == 2
    assert "has no config.toml" in capsys.readouterr().err


@pytest.mark.no_invariants  # checked explicitly below
def test_disagg_check_prints_one_line_per_violation(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    run_experiment(make_experiment(experiment__duration_s=2.0), out)
    summary = json.loads((out / "summary.json").read_text())
    n = summary["submitted"]
    summary["submitted"] = n + 1  # one request the rows do not have
    (out / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["check", str(out)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"ledger: summary.json submitted = {n + 1}, requests.parquet has {n}"]


@pytest.mark.no_invariants  # the checker is asserted on directly
@pytest.mark.parametrize("cap", [4, 1])
def test_an_overloaded_decode_unit_keeps_its_batch_cap(cap: int) -> None:
    """Regression (issue 21): requests that waited for a place in a full batch were joined
    retroactively at their KV's arrival, so the unit ran all 20 at once (cap 4), or raised
    CapacityExceeded (cap 1)."""
    raw = {**OVERLOAD, "policies": {"router": "round_robin", "decode_admission": {
        "name": "fcfs", "max_batch_requests": cap}}}
    exp = experiment_from_dict(raw)
    try:
        result = run_experiment(exp)
    except CapacityExceeded as e:
        pytest.fail(f"the run raised CapacityExceeded: {e}")
    assert result.summary["completed"] == result.summary["submitted"] >= 19
    violations = check_results(exp, result.tables["requests"], result.tables["transfers"],
                               result.summary)
    assert [v.describe() for v in violations] == []


def test_kv_capacity_with_paged_kv_sums_what_each_request_surely_held() -> None:
    """A decode unit of 4 CS-3s with 70B weights has C = 4 x 44 GB - 141.1 GB of KV; each row's
    request holds prompt + 1 tokens' blocks from its start (its whole prompt + output with
    reservation). Rows whose reservations overlap beyond C are fine with paged KV as long as
    their admission blocks fit; admission blocks beyond C are a violation in both modes; a
    preempted request's row (its interval includes its wait) is not counted."""
    exp = make_experiment()
    per_token = exp.model.kv_bytes_per_token_per_layer * exp.model.layers
    cap = 4 * exp.decode.hardware.memory_bytes - exp.model.weight_bytes
    # prompt 1,599 + 1 = 1,600 tokens = 100 blocks at admission; reserved: prompt + big_output
    big_output = int(cap / per_token / 2)  # two reservations of this size exceed C
    rows = [_row(i, prompt_tokens=1599, output_tokens=big_output) for i in range(2)]
    reserve = make_experiment(decode__kv_allocation="reserve")
    table = requests_table(rows)
    assert [v.invariant for v in check_results(reserve, table, transfers_table([]), {})
            if v.invariant == "kv_capacity"] == ["kv_capacity"]
    assert not [v for v in check_results(exp, table, transfers_table([]), {})
                if v.invariant == "kv_capacity"]
    blocks_over = int(cap / per_token / 1600) + 1  # this many 1,600-token admissions exceed C
    crowd = [_row(i, prompt_tokens=1599, output_tokens=2) for i in range(blocks_over)]
    found = check_results(exp, requests_table(crowd), transfers_table([]), {})
    assert [v.invariant for v in found if v.invariant == "kv_capacity"] == ["kv_capacity"]
    crowd[0]["preemptions"] = 1
    found = check_results(exp, requests_table(crowd), transfers_table([]), {})
    assert not [v for v in found if v.invariant == "kv_capacity"]

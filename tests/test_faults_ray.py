"""Every fault kind on the ray engine (issue 12 item 4), in one run on the shared Ray fixture: a
unit's actor really killed (``ray.kill``) and restarted, a host lost, a straggler, a degraded link
and a dropped KV payload; the ledger balances and each recovery shows in the results."""

from __future__ import annotations

import pytest
from conftest import make_experiment

from disagg.cluster.hardware.prefill import prefill_time
from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def test_every_fault_kind_on_the_ray_engine(ray_cluster, tmp_path, played_kills) -> None:
    exp = make_experiment(
        experiment__engine="ray", experiment__duration_s=8.0, decode__units=2, prefill__units=8,
        workload__rate_per_s=12.0, workload__output_tokens={"kind": "fixed", "value": 1500},
        faults=[
            {"kind": "unit_loss", "unit": "decode-1", "at_s": 2.0, "restart_after_s": 1.5},
            {"kind": "straggler", "unit": "prefill-0", "factor": 3.0, "from_s": 1.0, "to_s": 3.0},
            {"kind": "link", "link": "decode-host-0/ingress", "factor": 0.5, "from_s": 1.0,
             "to_s": 4.0},
            {"kind": "kv_drop", "requests": [3]},
            {"kind": "host_loss", "host": "prefill-host-1", "at_s": 2.5},  # prefill-4..7
        ])
    result = run_experiment(exp, tmp_path / "out")
    rows = result.tables["requests"].to_pylist()
    assert len(rows) == result.summary["submitted"] > 10
    assert {r["status"] for r in rows} <= {"completed", "failed"}
    by_id = {r["request_id"]: r for r in rows}
    assert (by_id[3]["status"], by_id[3]["reason"]) == ("failed", "kv_missing")
    # docs/reliability.md: a KV lives in Ray's object store only as long as the actor that put it
    # there, so a request whose KV a lost prefill unit had handed on while Ray was still copying
    # it ends failed / kv_missing (not redone: it was already placed on a decode unit; it may
    # have been redone before, from decode-1, and prefilled again on the lost host). How many
    # are in that window depends on how far the real copy lags, i.e. on the machine's load.
    lost_host = ["prefill-4", "prefill-5", "prefill-6", "prefill-7"]
    lost_kv = [r for r in rows if r["request_id"] != 3 and r["status"] != "completed"]
    assert all(r["status"] == "failed" and r["reason"].startswith("kv_missing")
               and r["prefill_unit"] in lost_host and r["decode_unit"] is not None and r["first_token_s"] is not None
               for r in lost_kv), [(r["request_id"], r["status"], r["reason"], r["prefill_unit"],
                                    r["decode_unit"], r["redone_from"]) for r in lost_kv]

    redone = [r for r in rows if r["redone_from"] == "decode-1"]
    assert redone and result.summary["redone"] == sum(1 for r in rows if r["redone_from"])
    assert result.summary["lost_units"] == lost_host  # decode-1 was restarted
    # the host loss is due at 2.5 s, but a loaded driver plays it later (two busy loops here:
    # prefill-4 served a request that arrived at 3.08 s): what holds under any load is that nothing
    # arriving after the loss was played ran on the lost host
    # (none arrive after it when the driver is so loaded that it plays the loss after the last
    # arrival at 8 s: then only the fault log and lost_units above say the host was lost)
    late = [r for r in rows if r["arrival_s"] > max(played_kills[u] for u in lost_host)]
    assert all(r["prefill_unit"] not in lost_host for r in late)
    # How soon the fresh decode-1 takes requests depends on how long Ray takes to start its
    # process: on a loaded machine it can be up only after the last arrival (8 emu s). What
    # holds under any load: it was restarted (decode-1 is not among lost_units, the restart is
    # in `faults`) and whatever it took completed (above). The virtual engine checks that it
    # takes requests again: tests/test_faults.py::test_unit_loss_with_restart_redoes_and_the_unit_comes_back

    # (a redone request's prefill times may come from its first unit: issue 11's record owners)
    slow = [r for r in rows if r["prefill_unit"] == "prefill-0" and r["redone_from"] is None
            and r["prefill_start_s"] is not None and 1.0 <= r["prefill_start_s"] < 3.0]
    for r in slow:  # a batch lasts at least its longest prompt alone, x 3 while slow
        alone = prefill_time([r["prompt_tokens"]], exp.model, exp.prefill.hardware,
                             exp.prefill.chips_per_unit).seconds
        assert r["first_token_s"] - r["prefill_start_s"] >= 3.0 * alone * (1 - 1e-9)
    assert slow

    faults = result.summary["faults"]
    assert faults == ["1.000 s: prefill-0 speed: durations x 3",
                      "1.000 s: link decode-host-0/ingress capacity x 0.5",
                      "2.000 s: decode-1 lost", *[f"2.500 s: {u} lost" for u in lost_host],
                      "3.000 s: prefill-0 speed: durations x 1",
                      "3.500 s: decode-1 restarted",
                      "4.000 s: link decode-host-0/ingress capacity x 1",
                      # KV faults are listed too (issue 30: they were missing)
                      "kv_drop: KV of request(s) 3 dropped (failed, reason kv_missing)"]

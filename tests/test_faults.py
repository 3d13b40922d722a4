"""Faults users ask for (issue 12 item 4) on the virtual engine, and the one schedule both engines
play (groundwork item 3): each kind leaves the ledger balanced and its recovery visible in the
results; the console summary lists what happened. Expected timings come from the performance
model and the link capacities directly, not from the units under test."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_experiment
from rich.console import Console

from disagg.actors.engines.faults import FaultPlayer
from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.cluster.faults import FaultAction, fault_schedule
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.messages import LinkScaled, SpeedChanged
from disagg.experiments.run import RunResult, run_experiment
from disagg.experiments.view.console import summary_table
from disagg.fabric.topology import build_topology

STATUSES = {"completed", "rejected", "failed"}


def _balanced(result: RunResult) -> list[dict[str, Any]]:
    rows = result.tables["requests"].to_pylist()
    assert len(rows) == result.summary["submitted"] > 0
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert {r["status"] for r in rows} <= STATUSES
    return rows


def _console_text(result: RunResult) -> str:
    console = Console(record=True, width=160)
    console.print(summary_table(result.summary))
    return console.export_text()


def test_the_schedule_is_time_ordered_and_reads_the_old_table_form() -> None:
    exp = make_experiment(decode__units=2, faults={
        "unit_loss": [{"unit": "decode-1", "at_s": 3.0}], "drop_kv_requests": [4],
        "corrupt_kv_requests": [5]})
    entries = list(exp.faults) + list(make_experiment(faults=[
        {"kind": "straggler", "unit": "prefill-0", "factor": 3, "from_s": 1.0, "to_s": 2.0},
        {"kind": "unit_loss", "unit": "prefill-1", "at_s": 0.5, "restart_after_s": 4.0}]).faults)
    schedule = fault_schedule(entries)
    assert [(a.at_s, a.action, a.target) for a in schedule.actions] == [
        (0.5, "kill", "prefill-1"), (1.0, "speed", "prefill-0"),
        (2.0, "speed", "prefill-0"), (3.0, "kill", "decode-1"), (4.5, "restart", "prefill-1")]
    assert schedule.kv_drop == {4} and schedule.kv_corrupt == {5}


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def kill_unit(self, unit: str, at_s: float) -> None:
        self.calls.append(("kill", unit, at_s))

    def restart_unit(self, unit: str, at_s: float) -> None:
        self.calls.append(("restart", unit, at_s))

    def send(self, component: str, message: Any) -> None:
        self.calls.append(("send", component, message))


def test_the_player_plays_due_actions_in_order_through_the_host() -> None:
    schedule = fault_schedule(make_experiment(faults=[
        {"kind": "link", "link": "decode-host-0/ingress", "factor": 0, "from_s": 2.0, "to_s": 3.0},
        {"kind": "straggler", "unit": "prefill-0", "factor": 2, "from_s": 1.0}]).faults)
    host = _Recorder()
    player = FaultPlayer(schedule, host)
    player.play_due(2.5)
    assert host.calls == [("send", "prefill-0", SpeedChanged(2.0, 1.0)),
                          ("send", "fabric", LinkScaled("decode-host-0/ingress", 0.0, 2.0))]
    assert player.next_at_s() == 3.0 and len(player.log) == 2


@pytest.mark.parametrize("entry, field", [
    ({"kind": "unit_loss", "unit": "decode-3", "at_s": 1.0}, "faults.0.unit"),
    ({"kind": "link", "link": "decode-host-9/egress", "factor": 0.5, "from_s": 1.0},
     "faults.0.link"),
])
def test_faults_must_name_what_the_experiment_has(entry: dict[str, Any], field: str) -> None:
    from disagg.experiments.checks import check_experiment

    with pytest.raises(ConfigError, match=f"field '{field}'"):
        check_experiment(make_experiment(faults=[entry]))


def test_a_straggler_window_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="to_s"):
        experiment_from_dict({**make_experiment().model_dump(mode="python"), "faults": [
            {"kind": "straggler", "unit": "prefill-0", "factor": 2, "from_s": 3.0, "to_s": 1.0}]})


def test_unit_loss_with_restart_redoes_and_the_unit_comes_back() -> None:
    exp = make_experiment(decode__units=2, workload__rate_per_s=12.0,
                          workload__output_tokens={"kind": "fixed", "value": 1500},
                          faults=[{"kind": "unit_loss", "unit": "decode-1", "at_s": 2.0,
                                   "restart_after_s": 1.0}])
    result = run_experiment(exp)
    rows = _balanced(result)
    redone = [r for r in rows if r["redone_from"] == "decode-1"]
    assert redone and all(r["status"] == "completed" for r in redone)
    assert result.summary["redone"] == len(redone)
    back = [r for r in rows if r["decode_unit"] == "decode-1" and (r["decode_start_s"] or 0) > 3.0]
    assert back, "the restarted unit takes requests again"
    text = _console_text(result)
    assert "2.000 s: decode-1 lost" in text and "3.000 s: decode-1 restarted" in text
    assert "redone from prefill" in text


def test_a_straggler_takes_factor_times_its_modeled_time() -> None:
    prompt, factor = 1000, 3.0
    exp = make_experiment(prefill__units=1, workload__rate_per_s=1.0,
                          workload__arrivals={"kind": "constant"},
                          workload__prompt_tokens={"kind": "fixed", "value": prompt},
                          workload__output_tokens={"kind": "fixed", "value": 20},
                          faults=[{"kind": "straggler", "unit": "prefill-0", "factor": factor,
                                   "from_s": 1.5, "to_s": 3.5}])
    rows = _balanced(run_experiment(exp))
    assert all(r["status"] == "completed" for r in rows)
    # one request per second, each prefill alone: it lasts the model's time, x factor while slow
    one_s = prefill_time([prompt], exp.model, exp.prefill.hardware,
                         exp.prefill.chips_per_unit).seconds
    assert factor * one_s < 1.0
    slow = 0
    for r in rows:
        in_window = 1.5 <= r["prefill_start_s"] < 3.5
        slow += in_window
        expected = (factor if in_window else 1.0) * one_s
        assert r["first_token_s"] - r["prefill_start_s"] == pytest.approx(expected, rel=1e-9)
    assert slow == 2  # arrivals at 2 s and 3 s


def test_a_cut_link_moves_no_bytes_until_restored() -> None:
    exp = make_experiment(workload__rate_per_s=8.0,
                          faults=[{"kind": "link", "link": "decode-host-0/ingress", "factor": 0,
                                   "from_s": 1.0, "to_s": 2.0}])
    result = run_experiment(exp)
    rows = _balanced(result)
    assert all(r["status"] == "completed" for r in rows)
    transfers = result.tables["transfers"].to_pylist()
    latency = exp.fabric.latency_s
    # a transfer that starts during the cut cannot finish before the link is restored
    during = [t for t in transfers if 1.0 <= t["start_s"] < 2.0]
    assert during and all(t["modeled_end_s"] >= 2.0 + latency - 1e-9 for t in during)
    assert "link decode-host-0/ingress capacity x 0 (cut)" in _console_text(result)


def test_a_degraded_link_carries_factor_times_its_capacity() -> None:
    exp = make_experiment(workload__rate_per_s=0.5, faults=[
        {"kind": "link", "link": "decode-host-0/ingress", "factor": 0.01, "from_s": 0.0}])
    result = run_experiment(exp)
    rows = _balanced(result)
    assert all(r["status"] == "completed" for r in rows)
    cap = build_topology(exp).capacity[("decode-host-0", "ingress")] * 0.01
    lone = [t for t in result.tables["transfers"].to_pylist()]
    # at 0.5 req/s transfers rarely overlap: the lone ones take bytes / (capacity x factor)
    took = sorted((t["modeled_end_s"] - exp.fabric.latency_s - t["start_s"]) * cap
                  / t["modeled_bytes"] for t in lone)
    assert took[0] == pytest.approx(1.0, rel=1e-6)


def test_kv_faults_fail_their_requests_only() -> None:
    exp = make_experiment(faults=[{"kind": "kv_drop", "requests": [2]},
                                  {"kind": "kv_corrupt", "requests": [3]}])
    rows = {r["request_id"]: r for r in _balanced(run_experiment(exp))}
    assert (rows[2]["status"], rows[2]["reason"]) == ("failed", "kv_missing")
    assert (rows[3]["status"], rows[3]["reason"]) == ("failed", "kv_checksum")
    assert all(r["status"] == "completed" for i, r in rows.items() if i not in (2, 3))


def test_action_descriptions_name_what_happened() -> None:
    assert FaultAction(1.5, 0, "kill", "decode-0").describe() == "1.500 s: decode-0 lost"


def test_losing_a_host_loses_every_unit_on_it() -> None:
    # 8 Trainium2 TP4 units, 4 per trn2.48xlarge host (16 chips): prefill-host-0 holds 0..3
    exp = make_experiment(prefill__units=8, workload__rate_per_s=12.0,
                          workload__output_tokens={"kind": "fixed", "value": 1500},
                          faults=[{"kind": "host_loss", "host": "prefill-host-0", "at_s": 2.0}])
    result = run_experiment(exp)
    rows = _balanced(result)
    assert all(r["status"] == "completed" for r in rows)
    lost = ["prefill-0", "prefill-1", "prefill-2", "prefill-3"]
    assert result.summary["lost_units"] == lost
    late = [r for r in rows if r["arrival_s"] > 2.5]
    assert late and all(r["prefill_unit"] not in lost for r in late)
    assert all(f"2.000 s: {u} lost" in result.summary["faults"] for u in lost)

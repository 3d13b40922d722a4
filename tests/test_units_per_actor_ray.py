"""Several units per Ray actor (``[placement] units_per_actor``): the same requests end the same
way as with one actor per unit, a unit-loss fault on a shared actor stops only that unit (and its
restart brings it back), an actor that dies loses all its units (their requests redone), and
the transport's message counts reach the summary."""

from __future__ import annotations

from typing import Any

import pytest
import ray
from conftest import make_experiment

from disagg.experiments.run import run_experiment

pytestmark = pytest.mark.ray


def statuses(result) -> dict[int, str]:
    return {r["request_id"]: r["status"] for r in result.tables["requests"].to_pylist()}


def test_shared_actors_end_the_same_requests_the_same_way(ray_cluster, tmp_path) -> None:
    common = {"experiment__engine": "ray", "experiment__duration_s": 4.0,
              "prefill__units": 4, "decode__units": 2}
    one = run_experiment(make_experiment(**common), tmp_path / "one")
    shared = run_experiment(make_experiment(placement__units_per_actor=4,
                                            placement__one_control_actor=True, **common),
                            tmp_path / "shared")
    assert statuses(shared) == statuses(one)
    assert set(statuses(one).values()) == {"completed"}
    assert {r["prefill_unit"] for r in shared.tables["requests"].to_pylist()} == \
        {f"prefill-{i}" for i in range(4)}
    messages = shared.summary["messages"]
    assert messages["requests"] == shared.summary["submitted"]
    assert 0 < messages["actor_calls"] < messages["messages_sent"]
    assert messages["by_type"]["RequestArrived"]["local"] == messages["requests"]  # same actor


def test_a_lost_shared_actor_loses_all_its_units(ray_cluster, tmp_path, actor_handles,
                                                noticed_losses) -> None:
    handles, noticed = actor_handles, noticed_losses
    killed: list[str] = []

    def kill_after_first_completion(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and not killed:
            killed.append("prefill-0")
            ray.kill(handles["prefill-0"], no_restart=True)  # hosts prefill-0 and prefill-1

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=5.0,
                          prefill__units=4, placement__units_per_actor=2,
                          workload__rate_per_s=8.0)
    result = run_experiment(exp, tmp_path / "out", progress=kill_after_first_completion)
    rows = result.tables["requests"].to_pylist()
    assert result.summary["lost_units"] == ["prefill-0", "prefill-1"]
    assert len(rows) == result.summary["submitted"]
    # the router redid the requests the lost units held; a KV they had already handed on but
    # whose real bytes were still being copied dies with its owner (Ray objects do): kv_missing
    lost_kv = [r for r in rows if r["status"] != "completed"]
    assert all(r["status"] == "failed" and r["reason"].startswith("kv_missing")
               and r["prefill_unit"] in ("prefill-0", "prefill-1") for r in lost_kv), lost_kv
    # how soon the supervisor notices depends on the machine's load; what holds under any: the
    # actor was dead by then, so whatever arrived later was served by the others, and completed
    assert set(noticed) == {"prefill-0", "prefill-1"}
    after = [r for r in rows if r["arrival_s"] > max(noticed.values())]
    assert after and all(r["prefill_unit"] in ("prefill-2", "prefill-3")
                         and r["status"] == "completed" for r in after)


def test_unit_loss_on_a_shared_actor_stops_only_that_unit(ray_cluster, tmp_path,
                                                          played_kills) -> None:
    exp = make_experiment(
        experiment__engine="ray", experiment__duration_s=6.0, prefill__units=2,
        placement__units_per_actor=2, workload__rate_per_s=8.0,
        workload__output_tokens={"kind": "fixed", "value": 1500},
        faults=[{"kind": "unit_loss", "unit": "prefill-1", "at_s": 1.5, "restart_after_s": 2.0}])
    result = run_experiment(exp, tmp_path / "out")
    rows = result.tables["requests"].to_pylist()
    assert {r["status"] for r in rows} == {"completed"}
    assert result.summary["lost_units"] == []  # restarted
    # the loss is due at 1.5 s but a loaded driver plays it later: arrivals after it was played
    # (and before the restart was due) ran on prefill-0
    down = [r for r in rows if played_kills["prefill-1"] < r["arrival_s"] < 3.3]
    assert down and all(r["prefill_unit"] == "prefill-0" for r in down)
    # how soon the fresh prefill-1 takes requests depends on when the loaded driver plays the
    # restart (maybe after the last arrival); what holds: it was restarted, in the fault log
    assert "3.500 s: prefill-1 restarted" in result.summary["faults"]


def test_a_lost_control_actor_ends_the_run_when_it_hosts_the_control_plane(
        ray_cluster, tmp_path, actor_handles) -> None:
    handles = actor_handles

    def kill_after_first_completion(snapshot: dict[str, Any]) -> None:
        if snapshot["completed"] >= 1 and handles:
            ray.kill(handles["router"], no_restart=True)  # the actor of all four
            handles.clear()

    exp = make_experiment(experiment__engine="ray", experiment__duration_s=60.0,
                          experiment__drain_timeout_s=60.0, placement__one_control_actor=True)
    result = run_experiment(exp, tmp_path / "out", progress=kill_after_first_completion)
    rows = result.tables["requests"].to_pylist()
    assert result.summary["component_lost"] == "collector"  # the first component it hosted
    assert len(rows) == result.summary["submitted"] > 0
    assert {r["status"] for r in rows} <= {"completed", "failed"}  # completed: drained before
    unended = [r for r in rows if r["reason"] == "emulator_component_lost"]
    assert unended and all(r["status"] == "failed" for r in unended)

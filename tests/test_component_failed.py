"""Fail loudly: an exception in a component's handler ends the run as ``ComponentFailed`` naming
the component, on the virtual engine (here) and the ray engine (``test_component_failed_ray``);
``disagg run`` prints one line naming it, exits 1 and writes the results reached so far."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import experiment_dict, make_experiment

from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.errors import ComponentFailed
from disagg.cluster.messages import RequestArrived
from disagg.experiments.cli.main import main
from disagg.experiments.run import run_experiment

RAISING = {"name": "failing_policy.RaisingAdmission", "params": {"fail_at": 3}}


def test_a_handler_that_raises_ends_the_virtual_run_naming_the_component() -> None:
    exp = make_experiment()

    def break_router(comps: dict[str, Any]) -> None:
        def boom(msg: RequestArrived) -> None:
            raise KeyError(msg.request.request_id)

        comps["router"].handlers[RequestArrived] = boom

    with pytest.raises(ComponentFailed) as info:
        run_virtual(exp, on_start=break_router)
    # the first request (id 0) reaches the router first
    assert (info.value.name, info.value.exc_type, info.value.message) == ("router", "KeyError", "0")
    assert str(info.value) == "component router failed: KeyError: 0"


def test_a_policy_that_raises_fails_its_decode_unit_and_the_rows_so_far_are_kept() -> None:
    exp = make_experiment(policies__decode_admission=RAISING)
    rows: list[dict[str, Any]] = []
    with pytest.raises(ComponentFailed) as info:
        run_virtual(exp, sink=lambda d: rows.extend(d.rows))
    assert (info.value.name, info.value.exc_type, info.value.message) == (
        "decode-0", "KeyError", "3")
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)) and ids  # every request that came in: exactly one row
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all(r["reason"] == "emulator_component_failed" for r in failed)


def test_an_error_in_a_fabric_event_ends_the_virtual_run_naming_the_fabric() -> None:
    """The fabric acts on its events from a loop timer, not in its task: an error there still
    ends the run as the fabric's failure."""
    exp = make_experiment()

    def break_fabric(comps: dict[str, Any]) -> None:
        fabric = comps["fabric"]

        def boom(t: float) -> None:
            raise ValueError(f"start at {t:g}")

        fabric._do_start = boom

    with pytest.raises(ComponentFailed) as info:
        run_virtual(exp, on_start=break_fabric)
    assert (info.value.name, info.value.exc_type) == ("fabric", "ValueError")
    assert info.value.message.startswith("start at ")


def test_component_failed_survives_pickling() -> None:
    """Ray carries it between processes by pickling: the fields must come back."""
    e = pickle.loads(pickle.dumps(ComponentFailed("decode-0", "KeyError", "24")))
    assert (e.name, e.exc_type, e.message) == ("decode-0", "KeyError", "24")


def test_run_experiment_writes_the_folder_then_raises(tmp_path: Path) -> None:
    exp = make_experiment(policies__decode_admission=RAISING)
    with pytest.raises(ComponentFailed) as info:
        run_experiment(exp, tmp_path / "out")
    folder = info.value.result.out_dir  # type: ignore[attr-defined]
    summary = json.loads((folder / "summary.json").read_text())
    rows = pq.read_table(folder / "requests.parquet").to_pylist()
    assert summary["submitted"] == len(rows) > 0


def test_cli_prints_one_line_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    tomli_w = pytest.importorskip("tomli_w")
    toml = tmp_path / "exp.toml"
    toml.write_text(tomli_w.dumps(experiment_dict(policies__decode_admission=RAISING)))
    code = main(["run", str(toml), "--out", str(tmp_path / "out"), "--no-live"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"disagg: error: component decode-0 failed: KeyError: 3; results so far "
                     f"in {tmp_path / 'out'}"]
    assert (tmp_path / "out" / "requests.parquet").exists()

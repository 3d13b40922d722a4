"""`disagg compare EXP_A EXP_B ... --equal cost|power|racks`: budgets by hand, the rounding rule,
errors naming the field, and a line-up end to end on the virtual engine."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import experiment_dict

from disagg.cluster.config import experiment_from_dict
from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.main import main
from disagg.experiments.compare.lineup import budget, line_up

H100_PRICE = 39.33 / 8  # catalog: p5.48xlarge Capacity Block / 8 GPUs


def _colocated(name: str, hw: str, units: int, **extra):
    raw = experiment_dict(**{"experiment__name": name, **extra})
    del raw["prefill"], raw["decode"]
    raw["colocated"] = {"hardware": hw, "chips_per_unit": 8, "units": units}
    return experiment_from_dict(raw)


def _disagg(name: str, units: int):
    gpu = {"hardware": "h100", "chips_per_unit": 8, "units": units}
    return experiment_from_dict(experiment_dict(experiment__name=name, prefill=gpu, decode=gpu))


def test_budgets_by_hand() -> None:
    ref = _colocated("a", "h100", 4)
    assert budget(ref, "cost") == pytest.approx(4 * 8 * H100_PRICE)
    assert budget(ref, "power") == pytest.approx(4 * 8 * 700.0)
    assert budget(ref, "racks") == pytest.approx(4 * 8 / 42)  # DGX H100: 8U per 8-GPU server
    # 4 CS-3 systems per unit: 4 hosts of 15U each
    cs3 = experiment_from_dict(experiment_dict(experiment__name="c"))
    # two TP4 Trainium2 units share one 16-chip host (8U, assumed)
    assert budget(cs3, "racks") == pytest.approx((8 + 4 * 15) / 42)


def test_units_scale_by_one_factor_and_round_down() -> None:
    ref, h200 = _colocated("ref", "h100", 4), _colocated("h200", "h200", 1)
    lined = line_up([ref, h200], "cost", ["ref.toml", "h200.toml"])
    # $157.32/h against $43.26/h per H200 server: 3.64 -> 3 servers
    assert lined[1].units == {"colocated": 3}
    assert lined[1].ratio == pytest.approx(3 * 43.26 / (4 * 39.33))
    b200 = _colocated("b200", "b200", 1)
    [_, scaled] = line_up([ref, b200], "power", ["ref.toml", "b200.toml"])
    assert scaled.units == {"colocated": 2}  # 22.4 kW / 8 kW per B200 server = 2.8 -> 2
    disagg = _disagg("d", 1)  # 1 + 1 servers; the reference has 4: factor 2 on each pool
    assert line_up([ref, disagg], "racks", ["r", "d"])[1].units == {"prefill": 2, "decode": 2}


def test_budget_left_after_rounding_down_buys_whole_units_in_pool_order() -> None:
    ref = _colocated("ref", "h100", 4)  # $157.32/h
    raw = experiment_dict(experiment__name="mixed",
                          prefill={"hardware": "h200", "chips_per_unit": 8, "units": 1},
                          decode={"hardware": "h100", "chips_per_unit": 8, "units": 1})
    # $43.26 + $39.33 = $82.59/h: f = 1.90 -> 1 + 1; +1 H200 prefill = $125.85 fits, then
    # +1 H100 decode ($165.18) and +1 more H200 ($169.11) do not
    [_, got] = line_up([ref, experiment_from_dict(raw)], "cost", ["r", "m"])
    assert got.units == {"prefill": 2, "decode": 1}
    assert got.budget == pytest.approx(2 * 43.26 + 39.33)


def test_every_cluster_sees_the_first_ones_stream() -> None:
    ref = _colocated("ref", "h100", 1, workload__rate_per_s=9.0, experiment__seed=3)
    other = _colocated("other", "h100", 1)
    lined = line_up([ref, other], "none", ["r", "o"])
    assert lined[1].experiment.workload == ref.workload
    assert lined[1].experiment.experiment.seed == 3 and lined[1].units == {"colocated": 1}


def test_missing_price_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"b\.toml: field 'colocated\.price_per_chip_hour_usd'"):
        line_up([_colocated("a", "h100", 1), _colocated("b", "trainium3", 1)], "cost",
                ["a.toml", "b.toml"])
    with pytest.raises(ConfigError, match="--equal"):
        line_up([_colocated("a", "h100", 1)], "floor_space", ["a.toml"])


def test_cli_line_up_end_to_end(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "experiments"
    out = tmp_path / "cmp"
    code = main(["compare", str(root / "gpu_baseline.toml"), str(root / "gpu_colocated.toml"),
                 "--equal", "power", "--duration", "2", "--local", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "compare.json").read_text())
    assert manifest["equal"] == "power" and manifest["policies"] == ["gpu_baseline", "gpu_colocated"]
    assert [c["units"] for c in manifest["clusters"]] == [{"prefill": 2, "decode": 2},
                                                         {"colocated": 4}]
    streams = [pq.read_table(next((out / "runs" / c).glob("*/*/requests.parquet")),
                             columns=["arrival_s", "prompt_tokens"]).to_pylist()
               for c in ("gpu_baseline", "gpu_colocated")]
    assert streams[0] == streams[1] and len(streams[0]) > 3
    assert main(["compare", str(root / "gpu_baseline.toml"), str(root / "gpu_colocated.toml"),
                 "--policies", "round_robin", "--out", str(tmp_path / "x")]) == 2

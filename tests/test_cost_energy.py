"""Cost and energy per output token, from the catalog's (or the experiment's) price and power,
and weight / KV precision as experiment options."""

from __future__ import annotations

import pytest
from conftest import make_experiment

from disagg.cluster.errors import ConfigError
from disagg.experiments.run import run_experiment


def test_weight_and_kv_dtype_are_experiment_options() -> None:
    exp = make_experiment(model={"name": "llama-3.1-70b", "weight_dtype": "fp8",
                                 "kv_dtype": "fp8"})
    assert exp.model.weight_bytes_per_param == 1.0
    assert exp.model.kv_bytes_per_element == 1.0
    assert exp.model.weight_bytes == pytest.approx(70.55e9)
    assert exp.model.sources["weight_dtype"] == "user override"


def test_an_unknown_dtype_is_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="weight_dtype"):
        make_experiment(model={"name": "llama-3.1-70b", "weight_dtype": "int3"})


def test_summary_reports_dollars_and_joules_per_output_token() -> None:
    # the default test cluster: 2 units x 4 Trainium2 chips, 1 unit of 4 CS-3
    s = run_experiment(make_experiment()).summary
    per_hour = 2 * 4 * 35.76 / 16 + 4 * 114.0  # trn2 Capacity Block / 16 chips; CS-3 assumption
    watts = 2 * 4 * 500.0 + 4 * 23_000.0  # Trainium2 (assumption) and CS-3 [2]
    tokens, end_s = s["total_output_tokens"], s["duration_s"]
    assert s["cluster_price_per_hour_usd"] == pytest.approx(per_hour)
    assert s["cluster_power_w"] == pytest.approx(watts)
    assert s["cost_per_million_tokens"] == pytest.approx(per_hour * end_s / 3600 / tokens * 1e6)
    assert s["energy_per_token_j"] == pytest.approx(watts * end_s / tokens)


def test_price_and_power_are_changeable_per_experiment() -> None:
    exp = make_experiment(decode__price_per_chip_hour_usd=50.0, decode__power_per_chip_w=15_000.0)
    s = run_experiment(exp).summary
    assert s["cluster_price_per_hour_usd"] == pytest.approx(2 * 4 * 35.76 / 16 + 4 * 50.0)
    assert s["cluster_power_w"] == pytest.approx(2 * 4 * 500.0 + 4 * 15_000.0)


def test_cost_is_none_when_a_pool_has_no_price() -> None:
    exp = make_experiment(prefill__hardware="trainium3", prefill__chips_per_unit=4)
    s = run_experiment(exp).summary
    assert s["cost_per_million_tokens"] is None and s["cluster_price_per_hour_usd"] is None
    assert s["energy_per_token_j"] is not None

"""Throughput under p99 latency limits (the accuracy suite's MLPerf metric), on the virtual
engine: a light load meets the limits, an overload misses them, and servers add capacity."""

from __future__ import annotations

import pytest

from disagg.cluster.config import load_experiment
from disagg.cluster.hardware.reference import Figure
from disagg.experiments.compare.accuracy import ROOT
from disagg.experiments.compare.accuracy_capacity import (
    LatencyLimits,
    capacity_tok_s,
    measure_rate,
)

SERVER = LatencyLimits(ttft_s=2.0, tpot_s=0.2)


def _exp(units: int):
    return load_experiment(ROOT / "accuracy/mlperf_llama2_70b.toml", {
        "experiment.engine": "virtual", "experiment.duration_s": 20.0,
        "colocated.hardware": "h200", "colocated.chips_per_unit": 1, "colocated.units": units})


def test_light_load_meets_the_limits_and_overload_misses_them() -> None:
    exp = _exp(1)
    light = measure_rate(exp, 1.0, SERVER)
    assert light.met
    # by hand: 70 B FP8 parameters x 2 FLOP x (~700 prompt + ~300 output tokens) per request
    # is ~1.4e14 FLOP; one H200 at 1,979 TFLOP/s peak serves at most ~14 requests/s
    assert not measure_rate(exp, 60.0, SERVER).met


def test_output_rate_is_the_arrival_rate_times_the_mean_output() -> None:
    r = measure_rate(_exp(1), 2.0, SERVER)
    # lognormal median 250, sigma 0.7 capped at 1,024: mean about 250 x exp(0.245) ~ 320
    assert 2.0 * 220 < r.output_tok_s < 2.0 * 400


def test_two_servers_sustain_about_twice_one() -> None:
    one = capacity_tok_s(_exp(1), SERVER, 1.0, 32.0, tol_fraction=0.02)
    two = capacity_tok_s(_exp(2), SERVER, 1.0, 64.0, tol_fraction=0.02)
    assert one > 0 and 1.6 * one < two < 2.4 * one


def test_a_capacity_figure_needs_both_limits() -> None:
    with pytest.raises(ValueError, match="latency limits"):
        Figure("x", "llama-2-70b", "h100", 2, "fp8", "fp8", "capacity", "capacity_tok_s",
               1.0, "predict", "src")
    with pytest.raises(ValueError, match="latency limits"):
        Figure("y", "llama-2-70b", "h100", 2, "fp8", "fp8", "decode", "itl_ms", 1.0,
               "predict", "src", ttft_limit_ms=2_000.0, tpot_limit_ms=200.0)

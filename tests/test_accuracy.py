"""``disagg accuracy``: the command's structure on the fast subset, and the fitted / predicted
split — taken from the reference figures, never from a case — holds. No MAPE threshold: a
threshold here could be met by tuning a constant to a predicted case."""

from __future__ import annotations

import json

import pytest

from disagg.cluster.hardware.fit import FIT_SPECS, fit_set
from disagg.experiments.cli.accuracy import accuracy_report
from disagg.experiments.cli.main import main
from disagg.experiments.compare.accuracy import RESERVED, cases, run_case


@pytest.fixture(scope="module")
def report() -> dict:
    return accuracy_report([run_case(c) for c in cases() if c.fast])


def test_fast_subset_has_a_fitted_and_a_predicted_case(report) -> None:
    sets = {c["set"] for c in report["cases"]}
    assert {"fitted", "predicted"} <= sets
    assert report["mape"]["fitted"] is not None and report["mape"]["predicted"] is not None
    for c in report["cases"]:
        assert c["published"] > 0 and c["emulated"] > 0 and c["source"]
        assert c["error"] == pytest.approx(c["emulated"] / c["published"] - 1)


def test_the_fitted_cases_are_exactly_the_fit_sets_figures() -> None:
    fitted = {c.figure_key for c in cases() if c.case_set == "fitted"}
    in_fits = {f.key for spec in FIT_SPECS for f in fit_set(spec.hardware)}
    assert fitted <= in_fits
    for c in cases():
        if c.case_set == "predicted":
            assert c.figure.kind == "predict" and c.figure_key not in in_fits
        if c.figure.method == "speculative":
            assert c.case_set != "fitted"


def test_no_case_comes_from_a_reserved_check() -> None:
    for c in cases():
        assert not any(r in c.figure.source.lower() for r in RESERVED), c.figure_key


def test_speculative_case_runs_with_speculative_decoding_on() -> None:
    case = next(c for c in cases() if c.figure_key == "cs3-70b-2100")
    plain = next(c for c in cases() if c.figure_key == "cs3-70b-450")
    # same hardware and model: speculation (alpha 0.7, gamma 4) must make a user faster
    assert run_case(case).emulated > run_case(plain).emulated


def test_the_command_prints_both_mapes_and_json(capsys) -> None:
    assert main(["accuracy", "--fast", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "MAPE over fitted cases" in out and "over predicted cases" in out
    assert main(["accuracy", "--fast", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["mape"]) == {"fitted", "predicted"} and data["cases"]

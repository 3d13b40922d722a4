"""``disagg calibrate``: every fitted figure within 10 %, the fit reproduces the catalog's stored
constants, and the report says which figures were fitted and which predicted."""

from __future__ import annotations

import dataclasses
import json

import pytest

from disagg.cluster.hardware.calibration import closed_loop, emulate, figure_model
from disagg.cluster.hardware.catalog import get_hardware
from disagg.cluster.hardware.fit import FIT_SPECS, FitSetError, fit_all, fit_set
from disagg.cluster.hardware.perf import decode_step_time
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.hardware.reference import FIT_GENERATION, figures
from disagg.experiments.cli.main import main


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("cal") / "calibration.json"
    assert main(["calibrate", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_fitted_figure_is_within_ten_percent(report) -> None:
    fitted = [f for f in report["figures"] if f["use"] == "fit"]
    assert len(fitted) >= 7  # 3 H100 + 2 Trainium2 + 2 CS-3: the speculative CS-3 figures left
    assert all(abs(f["error"]) <= 0.10 for f in fitted), [
        (f["key"], f["error"]) for f in fitted if abs(f["error"]) > 0.10]
    assert report["mape"]["fit"] <= 0.10
    assert report["mape"]["predict"] is not None


def test_every_reference_figure_is_in_the_report_with_its_source(report) -> None:
    keys = [f["key"] for f in report["figures"]]
    assert keys == [f.key for f in figures()]
    assert all(f["source"] and f["use"] in ("fit", "predict") for f in report["figures"])
    # a prediction is never tuned to its own check: the fit and predict sets are disjoint
    assert {f.key for f in figures() if f.kind == "fit"}.isdisjoint(
        f.key for f in figures() if f.kind == "predict")


def test_the_catalog_stores_the_fitted_constants(report) -> None:
    for c in report["constants"]:
        assert c["catalog"] == pytest.approx(c["fitted"], rel=0.01, abs=1e-9), c
    assert {c["hardware"] for c in report["constants"]} == {s.hardware for s in FIT_SPECS}


def test_the_fit_sees_only_fit_figures() -> None:
    for result in fit_all():
        assert result.fitted and all(f.kind == "fit" for f in result.fitted)
        assert all(f.hardware == result.spec.hardware for f in result.fitted)


def test_closed_loop_of_one_user_is_prefill_then_plain_decode() -> None:
    fig = next(f for f in figures() if f.key == "nim70b-c1-itl")
    model, hw = figure_model(fig), get_hardware("h100")
    loop = closed_loop(model, hw, 2, 1, 5000, 500)
    prefill_s = prefill_time([5000], model, hw, 2).seconds
    step_s = decode_step_time(1, 5250, model, hw, 2)
    assert loop.ttft_s == pytest.approx(prefill_s)
    assert loop.itl_s == pytest.approx(step_s)  # no other user's prefill to interleave
    assert loop.total_tok_s == pytest.approx(500 / (prefill_s + 500 * step_s))


def test_closed_loop_users_slow_each_other_by_their_prefills() -> None:
    fig = next(f for f in figures() if f.key == "nim70b-c5-itl")
    model, hw = figure_model(fig), get_hardware("h100")
    loop = closed_loop(model, hw, 2, 5, 5000, 500)
    p, s = prefill_time([5000], model, hw, 2).seconds, decode_step_time(5, 5 * 5250, model, hw, 2)
    d = loop.itl_s * 500
    # the fixed point by hand: D = n s + (b - 1) P D / (P + D)
    assert d == pytest.approx(500 * s + 4 * p * d / (p + d), rel=1e-9)
    assert loop.itl_s > s


def test_calibrate_prints_a_table_and_both_mapes(capsys) -> None:
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out
    assert "MAPE over fitted figures" in out and "over predicted figures" in out
    assert "fitted constants" in out and "nim70b-c1-itl" in out


def test_calibrate_out_to_a_missing_folder_exits_2_naming_the_flag(tmp_path, capsys) -> None:
    assert main(["calibrate", "--out", str(tmp_path / "nope" / "cal.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("disagg: error: --out") and "\n" not in err


def test_no_speculative_or_unknown_figure_is_ever_in_a_fit_set() -> None:
    for spec in FIT_SPECS:
        for f in fit_set(spec.hardware):
            assert f.method == "plain" and f.spec is None, f.key
            assert f.generation == FIT_GENERATION[spec.hardware], f.key
    # and the guard itself: a speculative figure passed as fit data is refused loudly
    spec_fig = next(f for f in figures() if f.method == "speculative")
    smuggled = dataclasses.replace(spec_fig, kind="predict")
    object.__setattr__(smuggled, "kind", "fit")  # bypasses __post_init__, as a bug would
    with pytest.raises(FitSetError, match="speculative"):
        fit_set(smuggled.hardware, [smuggled])
    with pytest.raises(ValueError, match="cannot be fitted"):
        dataclasses.replace(spec_fig, kind="fit")


def test_fit_set_refuses_another_software_generation() -> None:
    plain = next(f for f in figures() if f.key == "trn2-70b-itl-b")
    other = dataclasses.replace(plain, kind="fit")
    with pytest.raises(FitSetError, match="generation"):
        fit_set("trainium2", [other])


def test_every_speculative_figure_is_predicted_through_the_speculative_model() -> None:
    spec_figs = [f for f in figures() if f.method == "speculative"]
    assert {f.key for f in spec_figs} >= {"trn2-70b-spec-itl", "cs3-70b-2100"}
    for f in spec_figs:
        assert f.kind == "predict" and f.spec is not None and f.in_mape
        plain = emulate(dataclasses.replace(f, method="plain", spec=None))
        # speculation at batch 1-2 makes each token cheaper than plain decode
        faster = emulate(f) < plain if f.metric == "itl_ms" else emulate(f) > plain
        assert faster, f.key


def test_speculative_itl_by_hand_for_the_cs3_draft_case() -> None:
    # tokens per step (1 - a^(g+1)) / (1 - a); step = verify (the pipeline floor at batch 1,
    # the same as a plain step) + gamma draft steps of the 8B on one wafer
    f = next(f for f in figures() if f.key == "cs3-70b-2100")
    assert f.spec is not None
    a, g = f.spec.alpha, f.spec.gamma
    hw = get_hardware("cs3")
    step70 = 1 / emulate(dataclasses.replace(f, method="plain", spec=None))
    step8 = 1 / emulate(next(x for x in figures() if x.key == "cs3-8b-1800"))
    tokens = (1 - a ** (g + 1)) / (1 - a)
    assert hw.step_overhead_s == 0.0
    assert emulate(f) == pytest.approx(tokens / (step70 + g * step8), rel=1e-3)

"""disagg plan --robust: break-even against the analytic answer, winner shares against brute
force, price re-scored without runs, the cache and its journal, [robust] validation, and a small
end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.main import main
from disagg.experiments.robust import evaluate as evaluate_mod
from disagg.experiments.robust.analysis import analyse
from disagg.experiments.robust.core import Contender, break_even, latin_hypercube
from disagg.experiments.robust.dimensions import Dimension, dimensions, parse_settings
from disagg.experiments.robust.model_error import capacity_error, hardware_errors

TRN2_PRICE, H100_PRICE = 2.24, 4.92
# A: 8 Trainium2 chips + a 4-wafer CS-3 pipeline; B: 16 H100. Capacities are given, not run.
A = Contender("a", "trn2+cs3", "trn2+cs3", (("cs3", 4), ("trainium2", 8)),
              (("cs3", 114.0), ("trainium2", TRN2_PRICE)))
B = Contender("b", "h100", "h100", (("h100", 16),), (("h100", H100_PRICE),))
CAP_A, CAP_B = 50.0, 10.0
PRICE = Dimension("cs3", "price_per_hour_usd", 60.0, 80.0, 230.0, "price", "catalog")
EXPONENT = Dimension("cs3", "concurrency_exponent", 0.0, 0.5, 1.0, "perf", "catalog")


def fake_fetch(calls: list[tuple[str, float | None]]):  # type: ignore[no-untyped-def]
    """A's capacity falls linearly with the CS-3 exponent (when it is a dimension); B's is fixed.
    Records every (contender, exponent) asked for."""
    def fetch(requests):  # type: ignore[no-untyped-def]
        out = []
        for c, p in requests:
            x = p.get(EXPONENT.name)
            calls.append((c.key, x))
            out.append(CAP_A * (1 - 0.5 * (x or 0.0)) if c.key == "a" else CAP_B)
        return out
    return fetch


def test_price_break_even_matches_the_analytic_answer() -> None:
    # capacity_a / (8 x 2.24 + 4 p) = capacity_b / (16 x 4.92), solved for p by hand
    usd_b = 16 * H100_PRICE
    analytic = (CAP_A * usd_b / CAP_B - 8 * TRN2_PRICE) / 4
    assert 60 < analytic < 230
    calls: list[tuple[str, float | None]] = []
    b = break_even(PRICE, [A, B], [PRICE], "goodput_per_dollar", fake_fetch(calls), 40)
    assert b is not None and b.value == pytest.approx(analytic, rel=1e-9)
    assert b.with_wins_at_low and not b.with_wins_at_high
    assert "below" in b.sentence("cs3")


def test_no_break_even_is_said_when_the_order_does_not_flip() -> None:
    narrow = Dimension("cs3", "price_per_hour_usd", 60.0, 80.0, 90.0, "price", "space file")
    b = break_even(narrow, [A, B], [narrow], "goodput_per_dollar", fake_fetch([]), 40)
    assert b is not None and b.value is None
    assert b.sentence("cs3").startswith("cs3.price_per_hour_usd: no break-even in [60, 90]")
    # a price is re-scored analytically, so where they would swap beyond the range is given
    analytic = (CAP_A * 16 * H100_PRICE / CAP_B - 8 * TRN2_PRICE) / 4
    assert b.outside == pytest.approx(analytic, rel=1e-6)


def test_a_side_that_never_meets_the_target_is_named() -> None:
    def none_for_a(requests):  # type: ignore[no-untyped-def]
        return [0.0 if c.key == "a" else CAP_B for c, _ in requests]
    b = break_even(PRICE, [A, B], [PRICE], "goodput_per_dollar", none_for_a, 40)
    assert b is not None and b.value is None and b.with_never
    assert "meet the SLO target at no rate searched" in b.sentence("cs3")


def test_performance_break_even_by_bisection() -> None:
    # at the price default (80 $/h): 50 (1 - x / 2) / (17.92 + 320) = 10 / 78.72, by hand
    usd_a, usd_b = 8 * TRN2_PRICE + 4 * 80.0, 16 * H100_PRICE
    analytic = 2 * (1 - CAP_B / usd_b * usd_a / CAP_A)
    b = break_even(EXPONENT, [A, B], [PRICE, EXPONENT], "goodput_per_dollar", fake_fetch([]), 6)
    assert b is not None and b.value is not None
    assert abs(b.value - analytic) <= 1 / 64


def test_winner_shares_match_brute_force() -> None:
    dims = [PRICE, EXPONENT]
    points = latin_hypercube(dims, 64, seed=3)
    a = analyse([A, B], dims, points, "goodput_per_dollar", lambda c: 0.1, fake_fetch([]))
    wins_a = 0
    for p in points:  # every objective written out by hand
        obj_a = CAP_A * (1 - 0.5 * p[EXPONENT.name]) / (8 * TRN2_PRICE + 4 * p[PRICE.name])
        obj_b = CAP_B / (16 * H100_PRICE)
        wins_a += obj_a > obj_b
    share = {s.key: s for s in a.shares}
    assert 0 < wins_a < 64  # the sample straddles the break-even: the check can fail
    assert share["a"].best == wins_a / 64
    assert share["b"].best == 1 - wins_a / 64
    assert len(a.rows) == 2 * 64


def test_latin_hypercube_covers_every_stratum_and_is_seeded() -> None:
    pts = latin_hypercube([PRICE, EXPONENT], 10, seed=5)
    strata = sorted(int((p[EXPONENT.name] - 0.0) / 0.1) for p in pts)
    assert strata == list(range(10))
    assert pts == latin_hypercube([PRICE, EXPONENT], 10, seed=5)


def test_price_is_rescored_without_runs_and_the_journal_is_a_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, tuple[tuple[str, float], ...]]] = []

    def fake(exp, values, *rest):  # type: ignore[no-untyped-def]
        runs.append((exp, values))
        return 5.0, 3, 0.0
    monkeypatch.setattr(evaluate_mod, "evaluate_at", fake)
    journal = tmp_path / "robust-evaluations.jsonl"
    h100_only = [PRICE, EXPONENT]  # both about the CS-3: B's capacity needs one run only
    cache = evaluate_mod.CachedCapacities(journal, {"a": "exp-a", "b": "exp-b"},  # type: ignore[dict-item]
                                          h100_only, None, _space(), False, 2,  # type: ignore[arg-type]
                                          bound_fn=lambda exp, values: 1e9)
    points = latin_hypercube(h100_only, 8, seed=1)
    cache([(c, p) for p in points for c in (A, B)])
    assert sum(1 for e, _ in runs if e == "exp-b") == 1
    assert sum(1 for e, _ in runs if e == "exp-a") == 8  # one per exponent value, not per price
    again = evaluate_mod.CachedCapacities(journal, {}, h100_only, None, _space(), False, 2,  # type: ignore[arg-type]
                                          bound_fn=lambda exp, values: 1e9)
    assert again([(c, p) for p in points for c in (A, B)]) == [5.0] * 16
    assert len(runs) == 9 and again.resumed == 9


def test_a_contender_dominated_at_a_point_is_not_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []

    def fake(exp, values, *rest):  # type: ignore[no-untyped-def]
        runs.append(exp)
        return 5.0, 3, 0.0
    monkeypatch.setattr(evaluate_mod, "evaluate_at", fake)
    dear = Contender("c", "h100 x2", "h100", (("h100", 32),), (("h100", H100_PRICE),))
    bounds = {"exp-b": 20.0, "exp-c": 4.0}  # C costs twice B and cannot beat B's 5 req/s
    cache = evaluate_mod.CachedCapacities(
        tmp_path / "j.jsonl", {"b": "exp-b", "c": "exp-c"}, [PRICE], None, _space(),  # type: ignore[arg-type, dict-item]
        False, 1, bound_fn=lambda exp, values: bounds[exp])
    assert cache([(B, {PRICE.name: 80.0}), (dear, {PRICE.name: 80.0})]) == [5.0, 0.0]
    assert runs == ["exp-b"]
    cache.keep = {"c"}  # the default winner of a tornado is always measured
    assert cache([(B, {PRICE.name: 90.0}), (dear, {PRICE.name: 90.0})]) == [5.0, 5.0]
    assert runs == ["exp-b", "exp-c"]


def _space():  # type: ignore[no-untyped-def]
    from disagg.experiments.plan.space import SearchSpace
    return SearchSpace.model_validate({"family": [{"name": "x", "colocated": {
        "hardware": ["h100"], "chips_per_unit": [8], "units": [1]}}]})


@pytest.mark.parametrize(("table", "names"), [
    ({"h999": {"power_w": [1, 2]}}, "'h999'"),
    ({"cs3": {"speed": [1, 2]}}, "'cs3.speed'"),
    ({"cs3": {"price_per_hour_usd": [230, 60]}}, "'cs3.price_per_hour_usd'"),
    ({"cs3": {"price_per_hour_usd": 100}}, "'cs3.price_per_hour_usd'"),
    ({"samples": 0}, "'samples'"),
    ({"only": ["cs3.speed"]}, "'only'"),
    ({"capacity_error": 2}, "'capacity_error'"),
])
def test_bad_robust_tables_name_field_value_and_allowed(table: dict, names: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as e:
        parse_settings(table)
    msg = str(e.value)
    assert names in msg and "allowed" in msg and "\n" not in msg


def test_dimensions_follow_the_objective_and_the_hardware_used() -> None:
    s = parse_settings({"cs3": {"price_per_hour_usd": [50, 300]}})
    dims = {d.name: d for d in dimensions(s, {"cs3", "h100"}, "goodput_per_dollar",
                                          {"cs3.price_per_hour_usd": 100.0}, False)}
    assert (dims["cs3.price_per_hour_usd"].low, dims["cs3.price_per_hour_usd"].default,
            dims["cs3.price_per_hour_usd"].high) == (50, 100.0, 300)
    assert "cs3.power_w" not in dims  # power does not move goodput per dollar
    assert "trainium2.memory_efficiency" not in dims  # no candidate uses Trainium2
    assert "any.speculative_alpha" not in dims  # no pool decodes speculatively


def test_model_error_read_from_the_accuracy_table(tmp_path: Path) -> None:
    doc = tmp_path / "accuracy.md"
    row = ("| `{c}` | `x.toml` | llama-3.1-70b on 2 x {hw} fp8, c=1 | {m} | itl_ms | 10.00 | "
           "9.00 | {e} % | {s} |")
    doc.write_text("\n".join([
        row.format(c="a", hw="h100", m="plain", e="-10.0", s="predicted"),
        row.format(c="b", hw="h100", m="plain", e="+30.0", s="predicted"),
        row.format(c="c", hw="h100", m="plain", e="-90.0", s="fitted"),
        row.format(c="d", hw="h100", m="speculative", e="+90.0", s="predicted"),
        "**MAPE over fitted cases: 1.0 %; over predicted cases: 25.0 % (flagged ...)**"]))
    table = hardware_errors(doc)
    assert table[0] == {"h100": pytest.approx(0.2)} and table[1] == pytest.approx(0.25)
    assert capacity_error({"h100", "cs3"}, None, table) == pytest.approx(0.25)  # cs3: fallback
    assert capacity_error({"h100"}, 0.05, table) == 0.05


TINY_SPACE = """
[[family]]
name = "trn2+cs3"
prefill = { hardware = ["trainium2"], chips_per_unit = [8], units = [1] }
decode = { hardware = ["cs3"], chips_per_unit = [4], units = [1] }

[[family]]
name = "h100 colocated"
colocated = { hardware = ["h100"], chips_per_unit = [8], units = [1, 2] }

[search]
tol_fraction = 0.25

[robust]
samples = 3
only = ["cs3.price_per_hour_usd", "cs3.concurrency_exponent"]
[robust.cs3]
price_per_hour_usd = [20, 230]
"""


def test_robust_plan_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(_experiment_toml())
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "plan"
    code = main(["plan", str(exp), "--search", str(space), "--out", str(out), "--local",
                 "--robust"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Decision at the default assumptions" in text and "Break-even: cs3." in text
    data = json.loads((out / "robust.json").read_text())
    assert {d["name"] for d in data["dims"]} == {"cs3.price_per_hour_usd", "cs3.concurrency_exponent"}
    assert pq.read_table(out / "robust.parquet").num_rows == 3 * 3  # points x contenders
    page = (out / "robust.html").read_text()
    assert page.count("<img") == 3 and "<table" in page
    # the same command again: everything from the cache
    assert main(["plan", str(exp), "--search", str(space), "--out", str(out), "--local",
                 "--robust", "--resume"]) == 0
    assert "robust: 0 evaluations run" in capsys.readouterr().out


def test_bad_robust_table_exits_2_before_any_run(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(_experiment_toml())
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE.replace("[20, 230]", "[230, 20]"))
    assert main(["plan", str(exp), "--search", str(space), "--out", str(tmp_path / "p"),
                 "--local", "--robust"]) == 2
    err = capsys.readouterr().err
    assert "cs3.price_per_hour_usd" in err and "[230, 20]" in err
    assert not (tmp_path / "p").exists()


def _experiment_toml() -> str:
    return """
[experiment]
name = "t"
seed = 7
duration_s = 4.0
engine = "virtual"

[model]
name = "llama-3.1-70b"

[prefill]
hardware = "trainium2"
chips_per_unit = 4
units = 2

[decode]
hardware = "cs3"
chips_per_unit = 4
units = 1

[workload]
rate_per_s = 4.0
prompt_tokens = { kind = "lognormal", median = 1000, sigma = 0.8, max = 8192 }
output_tokens = { kind = "lognormal", median = 100, sigma = 0.6, max = 1024 }

[slo]
ttft_s = 1.0
tpot_s = 0.05

[output]
payload_scale = 1e-4
"""

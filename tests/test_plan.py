"""disagg plan: footprints, the frontier, pruning against brute force, resuming, bad input."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import make_experiment

from disagg.actors.engines.stop import StopFlag
from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.main import main
from disagg.experiments.plan import search as search_mod
from disagg.experiments.plan.bounds import workload_shape
from disagg.experiments.plan.candidates import (
    Candidate,
    candidate_experiment,
    enumerate_candidates,
    footprint,
)
from disagg.experiments.plan.runner import JOURNAL, run_plan
from disagg.experiments.plan.search import (
    EVALUATED,
    PRUNED,
    Evaluation,
    dominated_by,
    evaluate,
    frontier,
    prepare,
)
from disagg.experiments.plan.space import SearchSpace, load_space

CS3_PRICE = 100.0
SPACE = {
    "family": [
        {"name": "trn2+cs3", "prefill": {"hardware": ["trainium2"], "chips_per_unit": [4],
                                         "units": [1, 2]},
         "decode": {"hardware": ["cs3"], "chips_per_unit": [4], "units": [1]}},
        {"name": "h100", "prefill": {"hardware": ["h100"], "chips_per_unit": [8], "units": [1]},
         "decode": {"hardware": ["h100"], "chips_per_unit": [8], "units": [1]}},
        {"name": "h100 colocated",
         "colocated": {"hardware": ["h100"], "chips_per_unit": [8], "units": [1, 2]}},
    ],
    "search": {"tol_fraction": 0.25},
    "hardware": {"cs3": {"price_per_chip_hour_usd": CS3_PRICE}},
}


def _cand(name: str = "a", units: int = 1) -> Candidate:
    return Candidate(name, "trainium2", 4, units, "cs3", 4, 1, None, "round_robin", "fcfs")


def _row(key_units: int, denom: float, cap: float, bound: float = 1e9,
         status: str = EVALUATED) -> Evaluation:
    return Evaluation(_cand(units=key_units), status, "", denom, None, None, denom, bound, cap,
                      cap / denom, 1, 0.0)


def test_footprint_adds_both_pools_price_by_hand() -> None:
    space = SearchSpace.model_validate(SPACE)
    exp = candidate_experiment(make_experiment(), _cand(units=3), space)
    trn2_chip_hour = 35.76 / 16  # catalog: trn2.48xlarge Capacity Block $35.76/h over 16 chips
    expected = 3 * 4 * trn2_chip_hour + 1 * 4 * CS3_PRICE
    assert footprint(exp, space).usd_per_hour == pytest.approx(expected)
    # catalog: Trainium2 500 W per chip (an assumption), CS-3 23 kW per system
    assert footprint(exp, space).power_kw == pytest.approx((3 * 4 * 500 + 1 * 4 * 23_000) / 1e3)


def test_a_colocated_candidate_is_one_pool_priced_by_hand() -> None:
    space = SearchSpace.model_validate(SPACE)
    cands = [c for c in enumerate_candidates(space, make_experiment())
             if c.family == "h100 colocated"]
    assert [c.colocated_units for c in cands] == [1, 2]
    exp = candidate_experiment(make_experiment(), cands[1], space)
    assert exp.prefill is None and exp.decode is None and exp.colocated is not None
    assert exp.colocated.token_budget == 8192
    h100_gpu_hour = 39.33 / 8  # catalog: p5.48xlarge Capacity Block $39.33/h over 8 GPUs
    assert footprint(exp, space).usd_per_hour == pytest.approx(2 * 8 * h100_gpu_hour)
    assert footprint(exp, space).power_kw == pytest.approx(2 * 8 * 700 / 1e3)  # H100 TDP 700 W


def test_a_family_is_disaggregated_or_colocated() -> None:
    bad = {"family": [{"name": "x", "colocated": {"hardware": ["h100"], "chips_per_unit": [8],
                                                   "units": [1]},
                       "prefill": {"hardware": ["h100"], "chips_per_unit": [8], "units": [1]}}]}
    with pytest.raises(ValueError, match="either colocated or prefill"):
        SearchSpace.model_validate(bad)


def test_frontier_by_hand() -> None:
    a, b, c, d = _row(1, 10, 5), _row(2, 20, 4), _row(3, 20, 9), _row(4, 30, 9)
    # b is beaten by a (cheaper, more capacity); d by c (cheaper, same capacity)
    assert [r.candidate.prefill_units for r in frontier([a, b, c, d])] == [1, 3]


def test_a_candidate_is_pruned_only_by_a_no_dearer_one_reaching_its_bound() -> None:
    measured = _row(1, 10, 8.0)
    assert dominated_by(_row(2, 12, 0, bound=7.9, status=""), [measured]) is measured
    assert dominated_by(_row(2, 12, 0, bound=8.1, status=""), [measured]) is None
    assert dominated_by(_row(2, 9, 0, bound=1.0, status=""), [measured]) is None


def _brute_force_frontier(base_exp, space: SearchSpace) -> set[str]:  # type: ignore[no-untyped-def]
    """Every candidate measured (no pruning), then pairwise dominance written out here."""
    prepared = prepare(base_exp, enumerate_candidates(space, base_exp), space,
                       workload_shape(base_exp))
    pts = []
    for p in prepared:
        s = space.search
        cap, _, _ = evaluate(p.experiment, p.evaluation.bound_per_s, s.tol_fraction,
                             s.lo_fraction, s.repeats, space.objective.target_attainment)
        pts.append((p.candidate.key, p.evaluation.denominator, cap))
    pts = [p for p in pts if p[2] > 0]  # no capacity at all: on no frontier
    keep = set()
    for k, den, cap in pts:
        if not any((d2 < den and c2 >= cap) or (d2 <= den and c2 > cap) or
                   (d2 == den and c2 == cap and k2 < k) for k2, d2, c2 in pts if k2 != k):
            keep.add(k)
    return keep


@pytest.mark.slow
def test_plan_frontier_matches_brute_force(tmp_path: Path) -> None:
    base = make_experiment(experiment__duration_s=4.0)
    space = SearchSpace.model_validate(SPACE)
    result = run_plan(base, space, tmp_path / "plan", use_ray=False)
    assert {r.candidate.key for r in result.front} == _brute_force_frontier(base, space)
    assert any(r.status == PRUNED for r in result.rows)  # the search skipped work
    table = pq.read_table(tmp_path / "plan" / "plan.parquet")
    assert table.num_rows == len(enumerate_candidates(space, base))
    assert (tmp_path / "plan" / "best.toml").read_text().count("[prefill]") == 1
    assert "<img" in (tmp_path / "plan" / "report.html").read_text()


def test_resume_skips_finished_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = make_experiment(experiment__duration_s=2.0)
    space = SearchSpace.model_validate(SPACE)
    calls: list[float] = []

    def fake(exp, bound, *rest):  # type: ignore[no-untyped-def]
        calls.append(bound)
        return bound / 2, 1, 0.0

    monkeypatch.setattr(search_mod, "evaluate", fake)
    out = tmp_path / "plan"
    first = run_plan(base, space, out, use_ray=False)
    n_run = len(calls)
    lines = (out / JOURNAL).read_text().splitlines()
    (out / JOURNAL).write_text("\n".join(lines[:1]) + "\n{torn")  # as if interrupted
    again = run_plan(base, space, out, resume=True, use_ray=False)
    assert again.resumed == 1
    assert len(calls) - n_run == len([r for r in first.rows if r.status == EVALUATED]) - 1
    assert {r.candidate.key for r in again.front} == {r.candidate.key for r in first.front}


def test_existing_folder_and_missing_price_are_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    exp_file = Path(__file__).resolve().parent.parent / "experiments" / "quickstart.toml"
    space_file = tmp_path / "space.toml"
    space_file.write_text('[[family]]\nname = "x"\nprefill = { hardware = ["trainium3"], '
                          'chips_per_unit = [4], units = [1] }\ndecode = { hardware = ["cs3"], '
                          'chips_per_unit = [4], units = [1] }\n')
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert main(["plan", str(exp_file), "--search", str(space_file), "--out", str(user),
                 "--local"]) == 2
    err = capsys.readouterr().err
    # Trainium3 has no published price: refused before the folder is even looked at
    assert "trainium3" in err and "price_per_chip_hour_usd" in err
    space_file.write_text(space_file.read_text() + "[hardware.trainium3]\n"
                          "price_per_chip_hour_usd = 3.0\n")
    assert main(["plan", str(exp_file), "--search", str(space_file), "--out", str(user),
                 "--local"]) == 2
    assert "not written by disagg plan" in capsys.readouterr().err
    assert (user / "notes.txt").read_text() == "keep" and len(list(user.iterdir())) == 1


def test_bad_space_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text('[objective]\nmaximize = "speed"\n[[family]]\nname = "x"\n'
                   'prefill = { hardware = ["h100"], chips_per_unit = [8], units = [1] }\n'
                   'decode = { hardware = ["h100"], chips_per_unit = [8], units = [1] }\n')
    with pytest.raises(ConfigError, match="objective.maximize"):
        load_space(bad)


def test_a_stop_request_keeps_what_finished_and_resume_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = make_experiment(experiment__duration_s=2.0)
    space = SearchSpace.model_validate(SPACE)
    stop = StopFlag()
    done: list[str] = []

    def fake(exp, bound, *rest):  # type: ignore[no-untyped-def]
        done.append("run")
        stop.request("interrupted")  # as if Ctrl-C came while the first wave ran
        return bound / 2, 1, 0.0

    monkeypatch.setattr(search_mod, "evaluate", fake)
    out = tmp_path / "plan"
    first = run_plan(base, space, out, use_ray=False, stop=stop)
    assert first.stopped and len(done) == 1  # the wave in flight finished, no new one started
    assert pq.read_table(out / "plan.parquet").num_rows == len(first.rows) >= 1
    again = run_plan(base, space, out, resume=True, use_ray=False)
    assert not again.stopped and again.resumed == len(first.rows)
    assert len(again.rows) == len(enumerate_candidates(space, base))

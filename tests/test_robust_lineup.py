"""disagg compare ... --robust: a line-up's break-even against the analytic answer (a performance
exponent, and a price that changes the units the budget buys), winner shares against brute
force, --robust-space validation, and a tiny end-to-end run on the virtual engine (re-line-up
per point under --equal cost, none under --equal racks, the journal reused by --resume), and a
stop that keeps the finished runs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from disagg.cluster.errors import ConfigError
from disagg.experiments.cli.main import main
from disagg.experiments.robust.core import Point, latin_hypercube
from disagg.experiments.robust.dimensions import Dimension
from disagg.experiments.robust.lineup_core import Cell, analyse_lineup, break_even
from disagg.experiments.robust.lineup_runner import load_settings

EXPONENT = Dimension("cs3", "concurrency_exponent", 0.0, 0.5, 1.0, "perf", "catalog")
PRICE = Dimension("cs3", "price_per_hour_usd", 10.0, 50.0, 100.0, "price", "space file")
LABELS = ["trn2+cs3", "h100"]
ROOT = Path(__file__).resolve().parents[1] / "experiments"


def linear(points: Sequence[Point]) -> list[list[Cell]]:
    """A's goodput falls linearly in the CS-3 exponent (12 - 9x req/s), B's is 6 req/s: they
    swap at x = 2/3."""
    return [[Cell(12.0 - 9.0 * p[EXPONENT.name]), Cell(6.0)] for p in points]


def test_exponent_break_even_matches_the_analytic_answer() -> None:
    b = break_even(EXPONENT, LABELS, [EXPONENT], linear, 30)
    assert b.value == pytest.approx(2 / 3, abs=1e-8)
    assert (b.winner_at_low, b.winner_at_high) == ("trn2+cs3", "h100")
    assert "trn2+cs3 wins below 0.6667, h100 above" in b.sentence()
    six = break_even(EXPONENT, LABELS, [EXPONENT], linear, 6)  # the default steps: range / 2^7
    assert six.value is not None and abs(six.value - 2 / 3) <= 1 / 2 ** 7


def test_price_break_even_through_the_units_the_budget_buys() -> None:
    """Equal cost with A as reference: A's budget is 20 $/h + the CS-3's price p, B buys
    floor(budget / 5) units of 1 req/s each; A serves 10 req/s. B wins from the price where it
    buys 11 units: p + 20 >= 55, p = 35 (at 10 units, a tie, the reference keeps it)."""
    def cells(points: Sequence[Point]) -> list[list[Cell]]:
        return [[Cell(10.0), Cell(float(math.floor((p[PRICE.name] + 20.0) / 5.0)))]
                for p in points]
    b = break_even(PRICE, LABELS, [PRICE], cells, 40)
    assert b.value == pytest.approx(35.0, abs=1e-6)
    assert (b.winner_at_low, b.winner_at_high) == ("trn2+cs3", "h100")


def test_no_break_even_when_the_winner_holds_and_shares_match_brute_force() -> None:
    narrow = Dimension("cs3", "concurrency_exponent", 0.0, 0.2, 0.5, "perf", "space file")
    assert break_even(narrow, LABELS, [narrow], linear, 6).value is None
    dims = [EXPONENT, PRICE]

    def cells(points: Sequence[Point]) -> list[list[Cell]]:  # equal goodputs: capacity decides
        return [[Cell(1.0, 12.0 - 9.0 * p[EXPONENT.name] - 0.02 * p[PRICE.name]), Cell(1.0, 6.0)]
                for p in points]
    points = latin_hypercube(dims, 64, 3)
    a = analyse_lineup(LABELS, "cost", dims, points, cells)
    brute = sum(12.0 - 9.0 * p[EXPONENT.name] - 0.02 * p[PRICE.name] > 6.0
                for p in points) / 64
    assert 0 < brute < 1
    assert dict(a.shares) == pytest.approx({"trn2+cs3": brute, "h100": 1 - brute})
    assert a.winner == "trn2+cs3" and len(a.rows) == 2 * (64 + 1)
    assert a.tornado[0].dimension == EXPONENT.name  # 9 req/s of swing against 1.8


def test_robust_space_is_validated(tmp_path: Path) -> None:
    bad = {"only = ['cs3.nope']": "field 'only': value 'cs3.nope'",
           "samples = 0": "field 'samples': value 0",
           "[robust.cs3]\nprice_per_hour_usd = [200, 100]": "field 'cs3.price_per_hour_usd'"}
    for text, message in bad.items():
        path = tmp_path / "space.toml"
        path.write_text("[robust]\n" + text + "\n")
        with pytest.raises(ConfigError, match="--robust-space \\[robust\\]") as e:
            load_settings(str(path))
        assert message in str(e.value) and "allowed" in str(e.value)
    (tmp_path / "extra.toml").write_text("[search]\nx = 1\n")
    with pytest.raises(ConfigError, match="field 'search'.*only a \\[robust\\] table"):
        load_settings(str(tmp_path / "extra.toml"))
    a, b = str(ROOT / "quickstart.toml"), str(ROOT / "gpu_colocated.toml")
    assert main(["compare", a, b, "--robust", "--robust-space", str(path)]) == 2
    assert main(["compare", a, "--robust", "--local"]) == 2  # one cluster: no line-up
    assert main(["compare", a, b, "--equal", "cost", "--robust-space", str(path)]) == 2
    (tmp_path / "mine").mkdir()
    assert main(["compare", a, b, "--robust", "--local", "--out", str(tmp_path / "mine")]) == 2


def _rows(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return pq.read_table(out / "robust.parquet").to_pylist()


def test_end_to_end_cost_re_lines_up_racks_does_not_and_resume_reuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text("[robust]\nsamples = 3\nonly = ['cs3.price_per_hour_usd', "
                     "'cs3.concurrency_exponent']\n")
    args = ["compare", str(ROOT / "quickstart.toml"), str(ROOT / "gpu_colocated.toml"),
            "--robust", "--robust-space", str(space), "--local", "--duration", "2"]
    out = tmp_path / "cost"
    assert main([*args, "--equal", "cost", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Decision at the default assumptions (equal cost):" in printed
    assert "Break-even: cs3.price_per_hour_usd" in printed
    report = json.loads((out / "robust.json").read_text())
    assert [d["name"] for d in report["dims"]] == ["cs3.price_per_hour_usd",
                                                   "cs3.concurrency_exponent"]
    assert report["reruns_on"] == ["perf", "price"]
    rows = _rows(out)
    # the reference (quickstart: 8 Trainium2 chips + a 4-wafer CS-3 pipeline) sets the budget;
    # the H100 cluster buys floor(budget / price of an 8-GPU server) servers at each point
    ref = {r["point"]: r["usd_per_hour"] for r in rows if r["cluster"] == "quickstart"}
    server = 39.33  # catalog: p5.48xlarge Capacity Block, $/h
    gpu = [r for r in rows if r["cluster"] == "gpu_colocated"]
    assert len({r["units"] for r in gpu}) > 1
    for r in gpu:
        assert r["units"] == f"{math.floor(ref[r['point']] / server + 1e-9)} colocated"
    html = (out / "robust.html").read_text()
    assert html.count("<table>") >= 4 and "<img" in html and "<pre" not in html
    assert main([*args, "--equal", "cost", "--out", str(out), "--resume"]) == 0
    assert "robust: 0 runs made" in capsys.readouterr().out
    racks = tmp_path / "racks"
    assert main([*args, "--equal", "racks", "--out", str(racks)]) == 0
    gpu = [r for r in _rows(racks) if r["cluster"] == "gpu_colocated"]
    assert len({r["units"] for r in gpu}) == 1  # a price buys no racks: the line-up stands
    assert len({r["usd_per_hour"] for r in _rows(racks) if r["cluster"] == "quickstart"}) > 1


def test_a_stop_keeps_the_finished_runs_and_the_next_call_runs_only_the_rest(
        tmp_path: Path) -> None:
    from disagg.actors.engines.stop import StopFlag
    from disagg.cluster.config import load_experiment
    from disagg.experiments.robust.evaluate import RobustStopped
    from disagg.experiments.robust.lineup_eval import JOURNAL, LineupCells

    exps = [load_experiment(ROOT / name, {"experiment.duration_s": 2.0})
            for name in ("quickstart.toml", "gpu_colocated.toml")]
    # 2 points x 2 clusters, but the H100 cluster has no CS-3: the exponent leaves its run
    # unchanged, so both points share it: 3 distinct runs
    points = [{EXPONENT.name: 0.2}, {EXPONENT.name: 0.8}]
    stop = StopFlag()

    def after_one(what: str, done: int, total: int) -> None:
        stop.request("test stop")
    journal = tmp_path / JOURNAL
    cells = LineupCells(journal, exps, ["a", "b"], "cost", None, 1, [EXPONENT], False, 1,
                        after_one, stop)
    with pytest.raises(RobustStopped, match="2 runs left"):
        cells(points)
    assert len(journal.read_text().splitlines()) == 1
    again = LineupCells(journal, exps, ["a", "b"], "cost", None, 1, [EXPONENT], False, 1)
    assert again.resumed == 1
    got = again(points)
    assert again.runs == 2 and len(journal.read_text().splitlines()) == 3
    assert got[0][1] == got[1][1] and got[0][0] != got[1][0]


@pytest.mark.ray
def test_runs_as_ray_tasks_give_the_local_cells(ray_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    from disagg.cluster.config import load_experiment
    from disagg.experiments.robust.lineup_eval import LineupCells

    exps = [load_experiment(ROOT / name, {"experiment.duration_s": 2.0})
            for name in ("quickstart.toml", "gpu_colocated.toml")]
    points = [{EXPONENT.name: 0.2}, {EXPONENT.name: 0.8}]

    def cells(folder: str, use_ray: bool) -> list[list[Cell]]:
        (tmp_path / folder).mkdir()
        return LineupCells(tmp_path / folder / "j.jsonl", exps, ["a", "b"], "cost", [2.0, 4.0],
                           1, [EXPONENT], use_ray, 2)(points)
    assert cells("ray", True) == cells("local", False)

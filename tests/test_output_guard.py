"""Never destroy data (issue 12 item 1): an existing output path is refused unless ``--force``,
which replaces only a folder disagg wrote; names onto or outside the results root and unwritable
places are refused before anything runs; nothing pre-existing is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomli_w
from conftest import experiment_dict

from disagg.experiments.cli.main import main
from disagg.experiments.results.guard import MARKER

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"


def _run(*args: str) -> int:
    return main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "1", "--no-live",
                 *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_users_folder_is_refused_and_kept(tmp_path: Path, capsys) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    assert _run("--out", str(user)) == 2
    assert f"--out: value '{user}' already exists" in capsys.readouterr().err
    assert _run("--out", str(user), "--force") == 2
    assert "was not written by disagg" in capsys.readouterr().err
    assert _snapshot(user) == {"notes.txt": b"precious"}


def test_an_existing_file_is_refused_and_kept(tmp_path: Path, capsys) -> None:
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert _run("--out", str(target), "--force") == 2
    assert "was not written by disagg" in capsys.readouterr().err
    assert target.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["report.txt"]


def test_force_replaces_only_a_folder_disagg_wrote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run("--out", str(out)) == 0
    assert (out / MARKER).is_file()
    assert _run("--out", str(out)) == 2  # without --force an existing results folder is kept too
    (out / "notes.txt").write_text("the user's, added to the earlier run's folder")
    before = (out / "summary.json").read_bytes()
    assert _run("--out", str(out), "--force", "--seed", "99") == 0
    # --force replaces disagg's files; a file the user added is carried over (issue 30)
    assert (out / "notes.txt").read_text() == "the user's, added to the earlier run's folder"
    assert (out / "summary.json").read_bytes() != before and (out / "requests.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left


@pytest.mark.parametrize("where", ["{tmp}/afile/sub", "/proc/disagg-x", "."])
def test_unwritable_places_are_refused_before_running(tmp_path: Path, capsys, where: str) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    before = _snapshot(tmp_path)
    assert _run("--out", where.format(tmp=tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("disagg: error: --out: value ") and err.count("\n") == 1
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("name", [".", ".."])
def test_names_onto_or_outside_the_results_root_are_refused(tmp_path: Path, capsys,
                                                             monkeypatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "old").mkdir()
    raw = experiment_dict(experiment__name=name, experiment__duration_s=1.0)
    (tmp_path / "exp.toml").write_text(tomli_w.dumps(raw))
    before = _snapshot(tmp_path)
    assert main(["run", "exp.toml", "--no-live"]) == 2
    assert "field 'experiment.name': value" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before and (tmp_path / "results" / "old").is_dir()


def test_an_output_template_with_an_unknown_key_fails_validation(tmp_path: Path, capsys) -> None:
    raw = experiment_dict(output__dir="results/{nme}")
    (tmp_path / "exp.toml").write_text(tomli_w.dumps(raw))
    assert main(["validate", str(tmp_path / "exp.toml")]) == 2
    err = capsys.readouterr().err
    assert "field 'output.dir': value 'results/{nme}'" in err and "{name}" in err


def test_compare_refuses_an_existing_folder(tmp_path: Path, capsys) -> None:
    user = tmp_path / "cmp"
    user.mkdir()
    (user / "keep.csv").write_text("a,b\n")
    code = main(["compare", str(QUICKSTART), "--policies", "round_robin", "--engine", "virtual",
                 "--duration", "1", "--local", "--out", str(user), "--force"])
    assert code == 2 and "was not written by disagg" in capsys.readouterr().err
    assert _snapshot(user) == {"keep.csv": b"a,b\n"}

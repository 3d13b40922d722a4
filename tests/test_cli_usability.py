"""The command line as a user meets it: start-up imports, tables that survive a pipe or a narrow
terminal, --event-log, result folders under the user's umask, best.toml at the plan's capacity."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import make_experiment
from rich.console import Console

from disagg.experiments.cli.main import main
from disagg.experiments.plan.candidates import Candidate
from disagg.experiments.plan.output import write_outputs
from disagg.experiments.plan.search import EVALUATED, Evaluation
from disagg.experiments.view.tabular import Tabular, print_tables, readable_width

HEAVY = ("ray", "scipy", "fastapi", "uvicorn", "matplotlib", "disagg.experiments.serve")
QUICKSTART = Path(__file__).parent.parent / "experiments" / "quickstart.toml"
OTHER_KINDS = ("disagg.actors.components.colocated", "disagg.actors.components.closed_loop",
               "disagg.cluster.workload.agentic", "disagg.cluster.workload.sessions")


def _loaded_after(argv: list[str], watched: tuple[str, ...] = HEAVY) -> set[str]:
    """``watched`` modules loaded by a fresh interpreter that imports the CLI and runs
    ``argv``."""
    code = ("import sys, contextlib, io\n"
            "import disagg.experiments.cli.main as m\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        m.main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(','.join(x for x in {watched!r} if x in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    last = (out.stdout.splitlines() or [""])[-1]
    return set(filter(None, last.split(",")))


def test_help_and_validate_import_no_heavy_module() -> None:
    assert _loaded_after(["--help"]) == set()
    assert _loaded_after(["validate", str(QUICKSTART)]) == set()


def test_a_virtual_run_imports_no_heavy_module_nor_pyarrow_compute(tmp_path: Path) -> None:
    """A virtual run needs none of them (pyarrow.compute alone costs a run ~30 ms CPU), nor the
    unit and load-generator kinds its experiment does not have (the quickstart: an open loop,
    prefill and decode pools)."""
    argv = ["run", str(QUICKSTART), "--engine", "virtual", "--no-live", "--out",
            str(tmp_path / "out")]
    assert _loaded_after(argv, (*HEAVY, "pyarrow.compute", *OTHER_KINDS)) == set()
    assert (tmp_path / "out" / "summary.json").is_file()


def test_only_the_process_own_command_line_freezes_the_collector_for_exit() -> None:
    """``main()`` (the console script) leaves what exists out of the collector's passes as the
    process ends when it returns (another thread still runs); ``main(argv)`` (a caller that goes
    on, such as these tests) leaves it alone."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["validate", str(QUICKSTART)]) == 0  # its lazy imports (frozen: no_collection)
        before = gc.get_freeze_count()
        assert main(["validate", str(QUICKSTART)]) == 0
    assert gc.get_freeze_count() == before
    code = ("import gc, sys, threading\n"
            "from disagg.experiments.cli.main import main\n"
            "go = threading.Event()\n"
            "threading.Thread(target=go.wait).start()\n"
            f"sys.argv = ['disagg', 'validate', {str(QUICKSTART)!r}]\n"
            "code = main()\n"
            "print(code, gc.get_freeze_count() > 0)\n"
            "go.set()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "0 True"


@pytest.mark.parametrize(("experiment", "status"), [(QUICKSTART, 0), (Path("no-such.toml"), 2)])
def test_the_process_own_command_line_ends_in_main(experiment: Path, status: int) -> None:
    """``main()`` with no other thread running ends the process with the command's exit status
    (nothing after the call runs), its exit handlers run and its output flushed."""
    code = ("import atexit, sys\n"
            "from disagg.experiments.cli.main import main\n"
            "atexit.register(print, 'exit handler ran')\n"
            f"sys.argv = ['disagg', 'validate', {str(experiment)!r}]\n"
            "main()\n"
            "print('main returned')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == status
    assert out.stdout.splitlines()[-1] == "exit handler ran"
    assert "main returned" not in out.stdout
    said = out.stdout if status == 0 else out.stderr
    assert (" ok " in f" {said}") if status == 0 else said.startswith("disagg: error:")


def test_the_cli_equal_modes_are_the_line_ups() -> None:
    from disagg.experiments.cli.compare import EQUAL as CLI_EQUAL
    from disagg.experiments.compare.lineup import EQUAL
    assert CLI_EQUAL == EQUAL


TABLE = Tabular("t", ("name", "source"), (("a", "https://example.com/one/very/long/source x"),
                                          ("b", "short")))


def _console(width: int, terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=width, force_terminal=terminal, color_system=None), buf


def test_readable_width_by_hand() -> None:
    # name: longest word "name" = 4; source: "https://example.com/one/very/long/source" is 40,
    # capped at 24; plus 3 per column and 1: 4 + 24 + 6 + 1
    assert readable_width(TABLE) == 35


@pytest.mark.parametrize(("width", "terminal", "expected"), [
    (80, False, "csv"), (34, True, "plain"), (35, True, "table"), (200, True, "table")])
def test_auto_format_follows_the_output(width: int, terminal: bool, expected: str) -> None:
    console, _ = _console(width, terminal)
    assert print_tables(console, [TABLE]) == expected


def test_catalog_piped_is_csv_with_whole_cells(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    text = capsys.readouterr().out
    assert "…" not in text
    blocks = [b for b in text.split("# ") if b.strip()]
    assert [b.splitlines()[0] for b in blocks][:2] == ["models", "hardware (per chip or system)"]
    rows = list(csv.reader(io.StringIO(blocks[0].split("\n", 1)[1])))
    assert rows[0][0] == "name" and any(r[0] == "llama-3.1-70b" for r in rows[1:])


def test_catalog_json_and_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "--format", "json"]) == 0
    tables = json.loads(capsys.readouterr().out)
    assert {"models", "hardware (per chip or system)"} <= {t["title"] for t in tables}
    assert main(["catalog", "--format", "plain"]) == 0
    plain = capsys.readouterr().out
    assert "name                  : llama-3.1-70b" in plain
    assert max(len(line) for line in plain.splitlines() if ": " not in line) <= 80


def test_calibrate_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--format", "csv"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# reference figures against the models\nfigure,source,")
    assert "# MAPE over fitted figures" in text and "# fitted constants" in text


def test_event_log_flag_records_events(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "2",
                 "--no-live", "--out", str(out), "--event-log"]) == 0
    assert (out / "events.msgpack").stat().st_size > 0
    assert tomllib.loads((out / "config.toml").read_text())["output"]["event_log"] is True


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o027, 0o750)])
def test_results_folder_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    out = tmp_path / "r"
    old = os.umask(umask)
    try:
        assert main(["run", str(QUICKSTART), "--engine", "virtual", "--duration", "1",
                     "--no-live", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_best_toml_runs_at_the_capacity_found(tmp_path: Path) -> None:
    exp = make_experiment()  # workload.rate_per_s = 4
    cand = Candidate("f", "trainium2", 4, 2, "cs3", 4, 1, None, "round_robin", "fcfs")
    row = Evaluation(cand, EVALUATED, "", 10.0, None, None, 10.0, 20.0, 7.25, 0.725, 3, 0.0)
    write_outputs(tmp_path, [row], [row], "goodput_per_dollar", {cand.key: exp}, "p")
    best = tomllib.loads((tmp_path / "best.toml").read_text())
    assert best["workload"]["rate_per_s"] == 7.25

"""report.html in a real browser: headless Chromium loads it without console messages, and a
screenshot shows the plots (their line colours appear below the tables). Skipped where Debian's
``chromium`` is not installed (``apt-get install -y chromium``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_experiment
from matplotlib.image import imread

from disagg.experiments.compare.runs import compare, parse_policies, plan_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not found: `apt-get install -y chromium` to run this test")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
WIDTH, HEIGHT = 1400, 6000
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours


def _screenshot(page: Path, tmp: Path) -> tuple[np.ndarray, list[str]]:
    """Render ``page``; return the screenshot's RGB pixels and the browser's console lines."""
    shot = tmp / f"{page.stem}.png"
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--window-size={WIDTH},{HEIGHT}",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    rgb = (imread(shot)[..., :3] * 255).round().astype(int)
    return rgb, console


def _rows_with(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.nonzero((np.abs(rgb - np.array(colour)).sum(axis=-1) <= 30).any(axis=1))[0]


def test_console_capture_works(tmp_path: Path) -> None:
    """Control: a page that does log an error is caught, so the real check can fail."""
    probe = tmp_path / "probe.html"
    probe.write_text("<html><body><script>console.error('probe-error')</script></body></html>")
    _, console = _screenshot(probe, tmp_path)
    assert any("probe-error" in line for line in console)


def test_report_html_renders_its_plots_without_console_errors(tmp_path: Path) -> None:
    base = make_experiment(experiment__duration_s=4.0)
    plans = plan_runs(base, parse_policies("round_robin,compare_policies.FirstUnit"), [4.0, 10.0], 1)
    compare(base, plans, tmp_path / "cmp", use_ray=False)
    rgb, console = _screenshot(tmp_path / "cmp" / "report.html", tmp_path)
    assert console == []
    assert rgb.shape[:2] == (HEIGHT, WIDTH)
    for colour in (TAB_BLUE, TAB_ORANGE):
        rows = _rows_with(rgb, colour)
        assert len(rows) > 500, f"plot colour {colour} barely visible: the plots did not render"
        assert rows.min() > 150, "plot colours appear where only headings and tables should be"


SHOTS = Path(__file__).parent.parent / ".screenshots"  # DISAGG_KEEP_SCREENSHOTS=1 keeps them here


def _plan_folder(tmp: Path) -> Path:
    """A plan's outputs from hand-made evaluations (no search is run)."""
    from disagg.experiments.plan.candidates import Candidate
    from disagg.experiments.plan.output import write_outputs
    from disagg.experiments.plan.search import EVALUATED, Evaluation

    exp = make_experiment()
    rows = []
    for i, (units, cap, status) in enumerate([(1, 3.0, EVALUATED), (2, 5.5, EVALUATED),
                                              (4, None, "pruned_dominated")]):
        c = Candidate("trn2+cs3", "trainium2", 4, units, "cs3", 4, 1, None, "round_robin", "fcfs")
        cost = 100.0 + 50 * units
        rows.append(Evaluation(c, status, "" if cap else "dominated by a cheaper candidate", cost,
                               None, None, cost, 10.0 * units, cap, cap and cap / cost, 4 * i, 0.1))
    out = tmp / "plan"
    out.mkdir()
    write_outputs(out, rows, rows[:2], "goodput_per_dollar", {r.candidate.key: exp for r in rows},
                  "p")
    return out


def _lineup_folder(tmp: Path) -> Path:
    from disagg.experiments.compare.lineup import line_up, lineup_manifest, plan_lineup
    from disagg.experiments.compare.runs import compare as run_compare

    a = make_experiment(experiment__duration_s=3.0, experiment__name="trn2_cs3")
    b = make_experiment(experiment__duration_s=3.0, experiment__name="bigger",
                        prefill__units=3)
    lined = line_up([a, b], "none", ["a.toml", "b.toml"])
    run_compare(a, plan_lineup(lined, None, 1), tmp / "lineup", use_ray=False,
                manifest_extra=lineup_manifest(lined, "none"))
    return tmp / "lineup"


def _compare_folder(tmp: Path) -> Path:
    base = make_experiment(experiment__duration_s=3.0)
    compare(base, plan_runs(base, parse_policies("round_robin,least_loaded"), [2.0, 6.0], 1),
            tmp / "cmp", use_ray=False)
    return tmp / "cmp"


def _robust_folder(tmp: Path) -> Path:
    """A robust plan's page from hand-made contenders and capacities (no engine is run)."""
    from disagg.experiments.robust.analysis import analyse
    from disagg.experiments.robust.core import Contender, latin_hypercube
    from disagg.experiments.robust.dimensions import Dimension, RobustSettings
    from disagg.experiments.robust.output import write_robust

    a = Contender("a", "trn2+cs3", "trn2+cs3", (("cs3", 4), ("trainium2", 8)),
                  (("cs3", 114.0), ("trainium2", 2.24)))
    b = Contender("b", "h100", "h100", (("h100", 16),), (("h100", 4.92),))
    dims = [Dimension("cs3", "price_per_hour_usd", 60.0, 114.0, 230.0, "price", "catalog"),
            Dimension("cs3", "concurrency_exponent", 0.0, 0.5, 1.0, "perf", "catalog")]

    def fetch(requests):  # type: ignore[no-untyped-def]
        return [60.0 * (1 - 0.5 * p[dims[1].name]) if c.key == "a" else 10.0
                for c, p in requests]
    analysis = analyse([a, b], dims, latin_hypercube(dims, 16, 1), "goodput_per_dollar",
                       lambda c: 0.2, fetch)
    out = tmp / "robust"
    out.mkdir()
    write_robust(out, analysis, RobustSettings(samples=16), "p")
    return out


def _lineup_robust_folder(tmp: Path) -> Path:
    """A robust line-up's page from hand-made cells (no engine is run)."""
    from disagg.experiments.robust.core import latin_hypercube
    from disagg.experiments.robust.dimensions import Dimension, RobustSettings
    from disagg.experiments.robust.lineup_core import Cell, analyse_lineup
    from disagg.experiments.robust.lineup_output import write_lineup_robust

    dims = [Dimension("cs3", "price_per_hour_usd", 60.0, 114.0, 230.0, "price", "catalog"),
            Dimension("cs3", "concurrency_exponent", 0.0, 0.5, 1.0, "perf", "catalog")]

    def cells(points):  # type: ignore[no-untyped-def]
        return [[Cell(12 - 9 * p[dims[1].name], 8.0, (("prefill", 2), ("decode", 1)), 473.9),
                 Cell(6.0, 8.0, (("colocated", int(p[dims[0].name] // 10)),), 470.0)]
                for p in points]
    analysis = analyse_lineup(["trn2+cs3", "h100"], "cost", dims, latin_hypercube(dims, 16, 1),
                              cells)
    out = tmp / "lineup-robust"
    out.mkdir()
    write_lineup_robust(out, analysis, RobustSettings(samples=16), "trn2+cs3 vs h100")
    return out


@pytest.mark.parametrize("which", ["compare", "lineup", "plan", "robust", "lineup_robust"])
def test_each_report_page_is_html_and_renders_at_1400px(tmp_path: Path, which: str) -> None:
    folder = {"compare": _compare_folder, "lineup": _lineup_folder, "plan": _plan_folder,
              "robust": _robust_folder, "lineup_robust": _lineup_robust_folder}[which](tmp_path)
    page = folder / ("robust.html" if which.endswith("robust") else "report.html")
    text = page.read_text()
    assert "<pre" not in text and "|---" not in text and "**" not in text  # no raw Markdown
    assert text.count("<table>") >= 2
    height = 2400
    shot = tmp_path / f"{which}.png"
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == []
    rgb = (imread(shot)[..., :3] * 255).round().astype(int)
    assert rgb.shape[:2] == (height, WIDTH)
    ink = (rgb.sum(axis=-1) < 600).mean(axis=1)  # per screen row: share of non-white pixels
    assert (ink > 0.002).sum() > 300, "the page is (nearly) blank"
    top = rgb[:120].reshape(-1, 3)
    assert (top.sum(axis=-1) < 300).mean() > 0.002, "no dark heading text at the top"
    if os.environ.get("DISAGG_KEEP_SCREENSHOTS"):  # for a person to look at (gitignored)
        SHOTS.mkdir(exist_ok=True)
        shutil.copy(shot, SHOTS / f"report_{which}.png")

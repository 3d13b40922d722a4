"""report.html in a real browser: headless Chromium loads it without console messages, and a
screenshot shows the plots (their line colours appear below the tables). Skipped where Debian's
``chromium`` is not installed (``apt-get install -y chromium``)."""

from __future__ import annotations

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

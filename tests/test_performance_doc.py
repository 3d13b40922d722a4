"""The one command that regenerates docs/performance.md: its block replacement, and that the doc
has a place for every table the command writes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("performance", REPO / "benchmarks" / "performance.py")
assert _spec is not None and _spec.loader is not None
performance = importlib.util.module_from_spec(_spec)
sys.modules["performance"] = performance  # dataclasses look their module up
_spec.loader.exec_module(performance)


def test_replace_block_replaces_only_between_the_markers() -> None:
    text = ("intro\n<!-- BEGIN generated:a -->\nold\n<!-- END generated:a -->\n"
            "<!-- BEGIN generated:b -->\nkeep\n<!-- END generated:b -->\n")
    out = performance.replace_block(text, "a", "| x |\n")
    assert out == ("intro\n<!-- BEGIN generated:a -->\n| x |\n<!-- END generated:a -->\n"
                   "<!-- BEGIN generated:b -->\nkeep\n<!-- END generated:b -->\n")


@pytest.mark.parametrize("text", [
    "no markers",
    "<!-- BEGIN generated:a --><!-- BEGIN generated:a --><!-- END generated:a -->",
    "<!-- END generated:a --> <!-- BEGIN generated:a -->",
])
def test_replace_block_refuses_missing_repeated_or_reversed_markers(text: str) -> None:
    with pytest.raises(ValueError):
        performance.replace_block(text, "a", "x")


def test_the_doc_has_one_block_per_step() -> None:
    text = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    for step in performance.STEPS:
        performance.replace_block(text, step.name, "")  # raises if its markers are not there
        assert all((REPO / "benchmarks" / c[0]).is_file() for c in step.commands + step.quick)


def test_unknown_step_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert performance.main(["--only", "nope"]) == 2
    assert "'nope' is not a step" in capsys.readouterr().err

"""The docs say what the code does."""

from __future__ import annotations

from pathlib import Path

from disagg.experiments.cli.config_doc import config_reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_current() -> None:
    doc = (ROOT / "docs" / "config.md").read_text()
    assert config_reference_markdown() in doc, (
        "docs/config.md is stale: regenerate its Fields section with "
        "`python -m disagg.experiments.cli.config_doc`"
    )


def test_every_experiment_file_says_what_it_answers() -> None:
    files = sorted((ROOT / "experiments").glob("*.toml"))
    assert files
    for f in files:
        first = f.read_text().splitlines()[0]
        assert first.startswith("#") and len(first) > 20, f"{f.name} needs a question at the top"

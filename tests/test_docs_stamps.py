"""Issue 25 item 4: every measured number in README.md and docs/*.md sits in a generated block
stamped with the commit and the models hash, and a block whose numbers depend on the models
fails here when the catalog or a performance model changed since it was generated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchscripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]


regen = load_benchmark("regen_docs")


def test_every_generated_block_is_current() -> None:
    assert regen.problems() == []


def _copy(tmp: Path) -> Path:
    for rel in ("README.md", "docs", "cluster/hardware"):
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, tmp / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp / rel)
    return tmp


def test_a_model_change_makes_the_results_blocks_stale(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    perf = repo / "cluster" / "hardware" / "perf.py"
    perf.write_text(perf.read_text() + "\n# a changed model\n")
    found = regen.problems(repo)
    stale = {b.name for b in regen.BLOCKS}
    assert {p.split("'")[1] for p in found} == stale  # every results block, nothing else
    assert all("run python benchmarks/regen_docs.py --only" in p for p in found)


def test_an_unknown_or_unstamped_block_fails(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    doc = repo / "docs" / "fabric.md"
    doc.write_text(doc.read_text() + "\n<!-- BEGIN generated:mine -->\n| 1 |\n"
                   "<!-- END generated:mine -->\n")
    perf_doc = repo / "docs" / "performance.md"
    text = perf_doc.read_text()
    start = text.index("<!-- BEGIN generated:virtual-speed -->")
    end = text.index("<!-- END generated:virtual-speed -->")
    perf_doc.write_text(text[:start] + "<!-- BEGIN generated:virtual-speed -->\n| x |\n"
                        + text[end:])
    found = regen.problems(repo)
    assert any("'mine' is not a known" in p for p in found)
    assert any("'virtual-speed' has no stamp" in p for p in found)


@pytest.mark.parametrize("block", regen.BLOCKS + regen.ENGINE_DOC_BLOCKS, ids=lambda b: b.name)
def test_each_results_block_has_a_command_that_exists(block) -> None:  # noqa: ANN001
    for args in block.commands:
        # ``-m disagg.x.y``: the package ``disagg`` is this repository's root
        target = args[1].removeprefix("disagg.").replace(".", "/") + ".py" if args[0] == "-m" \
            else args[0]
        assert (REPO / target).is_file(), target

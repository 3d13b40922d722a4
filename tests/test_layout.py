"""The house: every module says what it holds, and the README's layout table matches the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("cluster", "policies", "fabric", "actors", "experiments")


def _modules() -> list[Path]:
    return sorted(p for top in CODE for p in (ROOT / top).rglob("*.py"))


def test_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _modules()
               if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert missing == []


def _packages() -> set[str]:
    return {str(p.parent.relative_to(ROOT)) + "/" for p in _modules() if p.name == "__init__.py"}


def test_readme_layout_table_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout"):readme.index("## Dependencies")]
    listed = set(re.findall(r"^\| `([\w/]+/)` \|", section, flags=re.M))
    code_listed = {p for p in listed if p.split("/")[0] in CODE}
    assert code_listed == _packages()
    for extra in listed - code_listed:
        assert (ROOT / extra).is_dir(), extra


def test_pyproject_installs_every_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for pkg in _packages():
        name = "disagg." + pkg.rstrip("/").replace("/", ".")
        assert f'"{name}" = "{pkg.rstrip("/")}"' in text, name

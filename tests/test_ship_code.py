"""``[placement] ship_code``: the package copy staged for a Ray cluster's nodes is removed once
``ray.init`` has uploaded it, whether the connection worked or not (it used to stay in the
temporary folder, one copy per command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_experiment

from disagg.actors.engines import ray_start
from disagg.cluster.errors import ConfigError


def _fake_init(seen: list[Path], fail: bool):
    def init(**kwargs: Any) -> None:
        staged = Path(kwargs["runtime_env"]["py_modules"][0])
        assert (staged / "cluster" / "component.py").is_file()  # there while Ray uploads it
        seen.append(staged)
        if fail:
            raise ConnectionError("no Ray cluster answers there")
    return init


@pytest.mark.parametrize("fail", [False, True])
def test_the_staged_package_is_removed_after_ray_init(monkeypatch, fail: bool) -> None:
    seen: list[Path] = []
    monkeypatch.setattr(ray_start.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_start, "_init", _fake_init(seen, fail))
    exp = make_experiment(experiment__engine="ray", placement__ship_code=True)
    if fail:
        with pytest.raises(ConfigError, match="cannot connect"):
            ray_start.init_ray(exp, "10.0.0.1:6379")
    else:
        assert ray_start.init_ray(exp, "10.0.0.1:6379") is True
    assert len(seen) == 1 and seen[0].name == "disagg"
    assert not seen[0].parent.exists()

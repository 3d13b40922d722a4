"""Placement decisions and code shipping, without starting Ray."""

from __future__ import annotations

import py_compile

from conftest import make_experiment

from disagg.actors.engines.placement import (
    CONTROL_RESOURCE,
    HEAD_RESOURCE,
    Placement,
    local_resources,
    placement_mode,
    stage_package,
)


def test_local_resources_cover_every_unit() -> None:
    exp = make_experiment(prefill__units=3, decode__units=2)
    res = local_resources(exp)
    assert res["trainium2"] == 3 * 4 and res["cs3"] == 2 * 4 and res[CONTROL_RESOURCE] >= 4


def test_resources_mode_when_the_cluster_advertises_the_hardware() -> None:
    exp = make_experiment()
    available = {"trainium2": 64.0, "cs3": 16.0, HEAD_RESOURCE: 1.0, "CPU": 8.0}
    assert placement_mode(exp, available) == "resources"
    p = Placement(exp, available)
    assert p.options("prefill-1") == {"num_cpus": 0, "resources": {"trainium2": 4.0}}
    assert p.options("decode-0") == {"num_cpus": 0, "resources": {"cs3": 4.0}}
    assert p.options("router") == {"num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}}
    assert placement_mode(exp, {"trainium2": 64.0}) == "spread"


def test_control_anywhere_when_asked() -> None:
    exp = make_experiment(placement={"control": "any"})
    p = Placement(exp, {"trainium2": 64.0, "cs3": 16.0, HEAD_RESOURCE: 1.0})
    assert p.options("fabric") == {"num_cpus": 0}


def test_staged_package_holds_every_subpackage() -> None:
    root = stage_package()
    assert root.name == "disagg"
    for sub in ("cluster", "policies", "fabric", "actors", "experiments"):
        files = list((root / sub).glob("*.py"))
        assert (root / sub / "__init__.py").exists() and files
        for f in files:
            py_compile.compile(str(f), doraise=True)

"""Placement decisions and code shipping, without starting Ray."""

from __future__ import annotations

import py_compile

from conftest import make_experiment

from disagg.actors.engines.placement import (
    CONTROL_RESOURCE,
    HEAD_RESOURCE,
    Placement,
    actor_groups,
    local_resources,
    placement_mode,
    staged_package,
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


def test_units_per_actor_groups_units_of_one_kind_in_index_order() -> None:
    exp = make_experiment(prefill__units=5, decode__units=2, placement__units_per_actor=2,
                          placement__one_control_actor=False)
    assert actor_groups(exp) == {
        "collector": ("collector",), "router": ("router",), "fabric": ("fabric",),
        "loadgen": ("loadgen",), "prefill-0": ("prefill-0", "prefill-1"),
        "prefill-2": ("prefill-2", "prefill-3"), "prefill-4": ("prefill-4",),
        "decode-0": ("decode-0", "decode-1")}
    p = Placement(exp, {"trainium2": 64.0, "cs3": 16.0, HEAD_RESOURCE: 1.0})
    assert p.options("prefill-2", 2) == {"num_cpus": 0, "resources": {"trainium2": 8.0}}


def test_one_control_actor_hosts_the_whole_control_plane() -> None:
    groups = actor_groups(make_experiment(placement__one_control_actor=True))
    assert groups["collector"] == ("collector", "router", "fabric", "loadgen")
    assert [k for k in groups if k != "collector"] == ["prefill-0", "prefill-1", "decode-0"]


def test_control_anywhere_when_asked() -> None:
    exp = make_experiment(placement={"control": "any"})
    p = Placement(exp, {"trainium2": 64.0, "cs3": 16.0, HEAD_RESOURCE: 1.0})
    assert p.options("fabric") == {"num_cpus": 0}


def test_staged_package_holds_every_subpackage() -> None:
    with staged_package() as root:
        assert root.name == "disagg"
        for sub in ("cluster", "policies", "fabric", "actors", "experiments"):
            files = list((root / sub).glob("*.py"))
            assert (root / sub / "__init__.py").exists() and files
            for f in files:
                py_compile.compile(str(f), doraise=True)

"""How the disagg process sets Python's garbage collector: each rule restores what it changed."""

from __future__ import annotations

import gc

import pytest

from disagg.experiments.cli.gc_rules import GC_YOUNG_OBJECTS, no_collection, run_gc


def test_no_collection_inside_and_as_before_after() -> None:
    assert gc.isenabled()
    with no_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), no_collection():
        raise RuntimeError("a load that fails")
    assert gc.isenabled()
    gc.unfreeze()  # what each no_collection froze on leaving (see the next test)
    gc.disable()
    try:
        with no_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()
        gc.unfreeze()


def test_no_collection_freezes_what_exists_on_leaving() -> None:
    made = [[]]  # a container: tracked by the collector
    assert any(o is made for o in gc.get_objects())
    try:
        with no_collection():
            made_inside = [[]]
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(o is made or o is made_inside for o in gc.get_objects())  # in no generation
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0 and any(o is made_inside for o in gc.get_objects())


def test_run_gc_freezes_and_sets_the_young_threshold_then_restores() -> None:
    threshold = gc.get_threshold()
    with run_gc():
        assert gc.get_threshold() == (GC_YOUNG_OBJECTS, *threshold[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0  # all unfrozen

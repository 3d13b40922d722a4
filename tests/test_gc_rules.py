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
    gc.disable()
    try:
        with no_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()


def test_run_gc_freezes_and_sets_the_young_threshold_then_restores() -> None:
    threshold = gc.get_threshold()
    with run_gc():
        assert gc.get_threshold() == (GC_YOUNG_OBJECTS, *threshold[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0  # all unfrozen

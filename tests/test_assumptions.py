"""The table of unpublished constants: ordered ranges, defaults equal to the catalog's values,
and printed by ``disagg catalog --assumptions``."""

from __future__ import annotations

from disagg.cluster.hardware.assumptions import assumptions
from disagg.cluster.hardware.catalog import get_hardware
from disagg.cluster.hardware.reference import ASSUMED_ALPHA
from disagg.experiments.cli.main import main


def test_every_range_is_ordered_and_reasoned() -> None:
    for a in assumptions():
        assert a.low <= a.default <= a.high and a.low < a.high, a
        assert len(a.reasoning) > 10


def test_defaults_are_what_the_catalog_uses() -> None:
    for a in assumptions():
        if a.hardware == "any":
            assert a.default == ASSUMED_ALPHA
        else:
            assert getattr(get_hardware(a.hardware), a.field) == a.default, a


def test_catalog_prints_the_assumptions(capsys) -> None:
    assert main(["catalog", "--assumptions", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "hop_latency_s" in out and "concurrency_exponent" in out and "low" in out

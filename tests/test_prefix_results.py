"""Prefix-cache figures in the views: the live dashboard, the console summary, the compare table."""

from __future__ import annotations

import io
import json

from rich.console import Console

from disagg.experiments.compare.prefix import unit_hit_table
from disagg.experiments.compare.table import COLUMNS, PREFIX_COLUMNS, summary_columns
from disagg.experiments.view.live import render


def _plain(renderable, width: int = 140) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def _prefill_unit(name: str, hits: int, looked: int) -> dict:
    return {"name": name, "queue": 0, "batch_tokens": 0, "utilization": 0.5, "tokens_per_s": 10.0,
            "prefix_hit_rate": hits / looked if looked else None, "prefix_hit_blocks": hits,
            "prefix_lookup_blocks": looked}


def test_live_view_shows_hit_rate_per_unit_and_for_the_pool() -> None:
    units = [_prefill_unit("prefill-0", 1, 4), _prefill_unit("prefill-1", 2, 4),
             _prefill_unit("prefill-2", 0, 0)]
    text = _plain(render({"now_s": 1.0, "live": {"units": {"prefill": units, "decode": []}}}))
    assert "prefix hit" in text
    assert " 25 %" in text and " 50 %" in text and "n/a" in text
    assert "prefix hit  38 % of blocks" in text  # (1 + 2) / (4 + 4)


def test_live_view_without_caches_has_no_hit_column() -> None:
    unit = {"name": "prefill-0", "queue": 0, "batch_tokens": 0, "utilization": 0.0,
            "tokens_per_s": 0.0}
    text = _plain(render({"now_s": 1.0, "live": {"units": {"prefill": [unit], "decode": []}}}))
    assert "prefix" not in text


def test_compare_table_adds_prefix_columns_only_when_a_run_has_them() -> None:
    assert summary_columns([{"prefix_hit_rate": None}, {}]) == COLUMNS
    assert summary_columns([{}, {"prefix_hit_rate": 0.2}]) == COLUMNS + PREFIX_COLUMNS


def test_per_unit_hit_table_averages_repeats() -> None:
    def row(policy: str, a: float | None, b: float) -> dict:
        units = {"prefill-0": {"hit_rate": a}, "prefill-1": {"hit_rate": b}}
        return {"policy": policy, "rate_per_s": 2.0, "prefix_cache_by_unit": json.dumps(units)}

    header, body = unit_hit_table([row("rr", 0.1, 0.2), row("rr", 0.3, 0.4), row("pa", None, 0.5),
                                   {"policy": "off", "rate_per_s": 2.0}])
    assert header == ["policy", "rate req/s", "prefill-0 hit %", "prefill-1 hit %"]
    assert body == [["rr", "2", "20.0", "30.0"], ["pa", "2", "n/a", "50.0"]]
    assert unit_hit_table([{"policy": "off", "rate_per_s": 1.0}]) == ([], [])

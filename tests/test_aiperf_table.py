"""benchmarks/aiperf_vs_summary.py (with benchmarks/aiperf_figures.py): the reading of AIPerf's
JSON export and disagg's summary.json, and the table it prints (docs/serve.md's generated block
``aiperf``). No network, no AIPerf: the fixture tests/data/aiperf_export.json has the shape of a
real ``profile_export_aiperf.json`` of AIPerf 0.13.0 (trimmed), with round numbers chosen by
hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from benchscripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "aiperf_export.json"


bench = load_benchmark("aiperf_vs_summary")
figures = sys.modules["aiperf_figures"]


def _export() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


SUMMARY = {  # the keys of a disagg summary.json that the table reads (milliseconds)
    "submitted": 40, "completed": 38, "total_output_tokens": 7600,
    "mean_ttft_ms": 157.8, "median_ttft_ms": 157.9, "p99_ttft_ms": 159.5,
    "mean_itl_ms": 0.5, "median_itl_ms": 0.48,
    "mean_e2el_ms": 257.3, "median_e2el_ms": 254.0, "p99_e2el_ms": 313.7,
    "lag_p50_ms": 27.1, "lag_p99_ms": 338.9,
}


def test_client_figures_are_read_from_the_export() -> None:
    f = figures.client_figures(_export())
    assert f.requests == "40 completed, 0 errors"  # no error_request_count: none failed
    assert f.output_tokens == 200.0
    assert f.ttft == (190.0, 170.0, 340.0)
    assert f.itl == (0.8, 0.6)
    assert f.latency == (350.0, 290.0, 750.0)
    assert f.lag is None  # the client cannot see the emulator's lateness


def test_errors_and_units_other_than_ms() -> None:
    export = _export()
    export["error_request_count"] = {"unit": "requests", "avg": 3.0}
    export["request_latency"] = {"unit": "s", "avg": 0.35, "p50": 0.29, "p99": 0.75}
    export["inter_token_latency"] = {"unit": "ns", "avg": 800_000.0, "p50": 600_000.0}
    f = figures.client_figures(export)
    assert f.requests == "40 completed, 3 errors"
    assert f.latency == pytest.approx((350.0, 290.0, 750.0))
    assert f.itl == pytest.approx((0.8, 0.6))


def test_a_missing_metric_or_unknown_unit_fails_loudly() -> None:
    export = _export()
    del export["time_to_first_token"]
    with pytest.raises(bench.BenchError, match="time_to_first_token"):
        figures.client_figures(export)
    export = _export()
    export["request_latency"]["unit"] = "fortnights"
    with pytest.raises(bench.BenchError, match="fortnights"):
        figures.client_figures(export)


def test_server_figures_are_read_from_summary_json() -> None:
    f = figures.server_figures(SUMMARY)
    assert f.requests == "40 submitted, 38 completed"
    assert f.output_tokens == 200.0  # 7,600 tokens over 38 completed requests
    assert f.ttft == (157.8, 157.9, 159.5)
    assert f.itl == (0.5, 0.48)
    assert f.latency == (257.3, 254.0, 313.7)
    assert f.lag == (27.1, 338.9)


def test_the_table_has_the_sections_rows() -> None:
    text = figures.table([("A: AIPerf (client)", figures.client_figures(_export())),
                        ("A: disagg `summary.json`", figures.server_figures(SUMMARY))])
    assert text.splitlines() == [
        "| figure | A: AIPerf (client) | A: disagg `summary.json` |",
        "|---|---|---|",
        "| requests | 40 completed, 0 errors | 40 submitted, 38 completed |",
        "| output tokens per request | 200 | 200 |",
        "| TTFT mean / p50 / p99 ms | 190.0 / 170.0 / 340.0 | 157.8 / 157.9 / 159.5 |",
        "| inter-token latency mean / p50 ms | 0.80 / 0.60 | 0.50 / 0.48 |",
        "| request latency mean / p50 / p99 ms | 350.0 / 290.0 / 750.0 | 257.3 / 254.0 / 313.7 |",
        "| emulator lag p50 / p99 ms | — | 27.1 / 338.9 |",
    ]


def test_the_block_is_registered_with_regen_docs() -> None:
    regen = load_benchmark("regen_docs")
    block = next(b for b in regen.ENGINE_DOC_BLOCKS if b.name == "aiperf")
    assert block.doc == "docs/serve.md"
    assert block.commands == (("benchmarks/aiperf_vs_summary.py",),)
    assert regen.ENGINE_BLOCKS["aiperf"] == "docs/serve.md"  # commit stamp, no models hash


def test_no_aiperf_is_one_line_and_exit_1_never_a_table(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(bench, "peer_venv", lambda *a: (None, "`pip install aiperf` failed: x"))
    assert bench.main(["--cache", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        "aiperf_vs_summary: AIPerf cannot be installed: `pip install aiperf` failed: x")


def test_a_failing_client_is_one_line_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "aiperf-A.log"
    argv = [sys.executable, "-c", "import sys; print('starting'); print('no route to host'); "
            "sys.exit(3)"]
    with pytest.raises(bench.BenchError) as failed:
        bench.run_client(argv, tmp_path, log)
    assert str(failed.value) == f"aiperf profile exited 3: no route to host (log: {log})"

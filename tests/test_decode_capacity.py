"""A decode unit never runs more requests than its batch holds (issue 21, item 3).

A request that waits in ``pending`` because the batch is full was not late: it queued, and is
never back-dated to a time the batch had no room for it. Before the time gate, the virtual
engine credited such a request every token it "would have" produced while it waited, so the
overload run below decoded all requests at once (~1.7 s) and, with one request per batch, ended
in ``CapacityExceeded``. The expected times are hand arithmetic on the performance model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from disagg.actors.engines.virtual import run_virtual
from disagg.cluster.config import load_experiment
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time
from disagg.experiments.run import assemble

OVERLOAD = """
[experiment]
name = "overload"
seed = 1
duration_s = 0.2
engine = "virtual"

[model]
name = "llama-3.1-8b"

[prefill]
hardware = "h100"
units = 4

[decode]
hardware = "h100"
units = 1

[workload]
rate_per_s = 100.0
arrivals = {{ kind = "constant" }}
prompt_tokens = {{ kind = "fixed", value = 512 }}
output_tokens = {{ kind = "fixed", value = 200 }}

[slo]
ttft_s = 100.0
tpot_s = 1.0

[policies]
router = "round_robin"
decode_admission = {{ name = "fcfs", max_batch_requests = {batch} }}
"""


def _rows(tmp_path: Path, batch: int) -> list[dict]:
    path = tmp_path / f"overload_{batch}.toml"
    path.write_text(OVERLOAD.format(batch=batch))
    exp = load_experiment(path, {})
    return assemble(exp, run_virtual(exp)).tables["requests"].to_pylist()


def _max_concurrent(rows: list[dict]) -> int:
    """Most requests whose decode intervals [decode_start_s, last_token_s) overlap at once."""
    events = sorted([(r["decode_start_s"], 1) for r in rows] + [(r["last_token_s"], -1)
                                                              for r in rows],
                    key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _wave_s(batch: int) -> float:
    """199 decode steps (the first token is prefill's) of ``batch`` requests whose contexts grow
    from 513 to 711 tokens: the step time at the mean context, times 199."""
    model, hw = get_model("llama-3.1-8b"), get_hardware("h100")
    return 199 * decode_step_time(batch, batch * (513 + 99), model, hw, 1)


@pytest.mark.parametrize("batch", [4, 1])
def test_overloaded_decode_unit_runs_in_waves(tmp_path: Path, batch: int) -> None:
    rows = _rows(tmp_path, batch)
    n = len(rows)
    assert n >= 19 and all(r["status"] == "completed" for r in rows)
    assert _max_concurrent(rows) <= batch
    # full waves of `batch` requests, then one wave of the rest, back to back after the first
    # request's prefill; the waves' step times change little with the batch (memory-bound)
    full, rest = divmod(n, batch)
    want = full * _wave_s(batch) + (_wave_s(rest) if rest else 0.0)
    first = min(r["decode_start_s"] for r in rows)
    last = max(r["last_token_s"] for r in rows)
    assert last - first == pytest.approx(want, rel=0.02)

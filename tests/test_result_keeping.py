"""benchmarks/result_keeping.py (docs/performance.md's block ``result-keeping``): the sinks it
replaces are the ones a run calls, every request still ends with them replaced, the classes are
restored after, and the table's arithmetic on figures worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from benchscripts import load_benchmark

from disagg.actors.components.collector import Collector
from disagg.actors.components.unit_log import UnitLog
from disagg.cluster.config import load_experiment
from disagg.cluster.sketch import QuantileSketch
from disagg.experiments.run import execute
from disagg.fabric.link_history import LinkHistory

bench = load_benchmark("result_keeping")
REPO = Path(__file__).resolve().parents[1]


def _methods() -> tuple[object, ...]:
    return (Collector.__dict__["_finish"], QuantileSketch.__dict__["add_run"],
            LinkHistory.__dict__["record"], UnitLog.__dict__["work"], UnitLog.__dict__["__init__"])


def test_every_sink_is_called_by_a_run_and_every_request_still_ends() -> None:
    exp = load_experiment(REPO / "experiments" / "mooncake_conv.toml",
                          {"experiment.engine": "virtual", "experiment.duration_s": 30.0})
    before = _methods()
    plain = execute(exp)
    counted = {}
    for how in (bench.NONE, bench.SHIPPED):
        sinks = bench.Sinks()
        with sinks.replaced(tuple(bench.SINKS), how):
            raw = execute(exp)
        assert _methods() == before
        # every request ended once, with a row (a stub one: the collector's fold was replaced)
        assert sorted(r["request_id"] for r in raw["requests"]) == \
            sorted(r["request_id"] for r in plain["requests"])
        assert sinks.calls["collector"] == len(plain["requests"])
        assert set(sinks.calls) == set(bench.SINKS) and min(sinks.calls.values()) > 0
        assert (sinks.shipped_bytes > 0) == (how == bench.SHIPPED)
        counted[how] = dict(sinks.calls)
    assert counted[bench.NONE] == counted[bench.SHIPPED]  # the same run either way


def test_one_sink_replaced_leaves_the_others_alone() -> None:
    before = _methods()
    sinks = bench.Sinks()
    with sinks.replaced(("itl",), bench.NONE):
        during = _methods()
        assert during[1] is not before[1]
        assert during[:1] + during[2:] == before[:1] + before[2:]
        sketch = QuantileSketch()
        sketch.add_run(np.array([0.1, 0.1]), 1.0, 2.0)
        assert sketch.totals() == (0, 0.0, 0.0)  # dropped
    assert sinks.calls == {"itl": 1}
    sketch = QuantileSketch()
    sketch.add_run(np.array([0.1, 0.1]), 1.0, 2.0)
    assert sketch.totals() == (2, 3.0, 0.30000000000000004)  # restored: 0.1 x 1 + 0.1 x 2


def _run(wall: float, cpu: float, calls: dict[str, int], shipped: int = 0) -> dict[str, object]:
    return {"wall_s": wall, "cpu_s": cpu, "requests": 10, "calls": calls, "shipped_bytes": shipped}


def test_the_table_sets_each_way_against_its_paired_plain_run() -> None:
    every = {"collector": 10, "itl": 15, "links": 18, "logs": 75}
    rounds = [
        {"none:all": (_run(4.0, 4.1, {}), _run(3.6, 3.7, every)),
         "shipped:all": (_run(5.0, 5.1, {}), _run(4.6, 4.7, every, 25_000))},
        {"none:all": (_run(4.4, 4.5, {}), _run(3.8, 3.9, every)),
         "shipped:all": (_run(4.2, 4.3, {}), _run(4.0, 4.1, every, 25_000))},
    ]
    assert bench.WAYS == ("none:all", "shipped:all")
    lines = bench.table(rounds, 2).splitlines()
    # 10 requests: the calls a request from the first round's no-op run
    assert "10 requests" in lines[0] and "inter-token latency sketch" in lines[0]
    assert ": 1.0; " in lines[0] and ": 1.5; " in lines[0] and ": 7.5." in lines[0]
    # plain walls 4.0, 5.0, 4.4, 4.2 (median 4.3), CPU 4.1, 5.1, 4.5, 4.3 (median 4.4)
    assert "| nothing replaced | 4.30 | 4.40 | 1 |" in lines
    # no-ops: 3.6 / 4.0 = 0.900 and 3.8 / 4.4 = 0.864, median 0.882
    assert "| the four sinks as no-ops | 3.70 | 3.80 | **0.882** (0.864–0.900) |" in lines
    # shipped: 4.6 / 5.0 = 0.920 and 4.0 / 4.2 = 0.952; 25,000 bytes over 10 requests
    assert ("| the four sinks shipped (2.5 kB pickled a request, in batches of 2,048 calls) | "
            "4.30 | 4.40 | **0.936** (0.920–0.952) |") in lines

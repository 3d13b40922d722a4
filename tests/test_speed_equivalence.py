"""The virtual engine's speed-ups keep results: each faster path against the plain one it
replaced (held timeseries bins, ``Wake`` against ``asyncio.Event`` + ``asyncio.timeout``, the
prefill-time cache, a KV payload taken at once against one awaited in a task)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import numpy as np
import pytest

from disagg.actors.components.recent_boundaries import RecentBoundaries
from disagg.actors.engines import virtual
from disagg.actors.engines.virtual import VirtualClock
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster import sketch_keys
from disagg.cluster.config import load_experiment
from disagg.cluster.hardware import prefill as perf_prefill
from disagg.cluster.timeseries import BinnedIntegral, SteppedValues, bin_of
from disagg.cluster.wake import Wake
from disagg.experiments.run import execute

STEP_S = 0.5


def _reference_steps(events: list[tuple[float, float]], n_bins: int) -> list[float]:
    """Per bin 1..n the value of the latest change by (time, arrival), carried forward."""
    latest: dict[int, tuple[float, int, float]] = {}
    for seq, (t, v) in enumerate(events):
        k = bin_of(t, STEP_S)
        if k not in latest or (t, seq) >= latest[k][:2]:
            latest[k] = (t, seq, v)
    out, value = [], 0.0
    for k in range(1, n_bins + 1):
        value = latest[k][2] if k in latest else value
        out.append(value)
    return out


def test_held_bins_give_the_step_values_of_a_plain_fold() -> None:
    rng = np.random.default_rng(3)
    times = np.round(np.cumsum(rng.exponential(0.2, 300)) + rng.normal(0, 0.3, 300), 2)
    events = [(max(0.0, float(t)), float(v)) for t, v in zip(times, rng.integers(0, 9, 300),
                                                            strict=True)]
    n = bin_of(max(t for t, _ in events), STEP_S)
    series = SteppedValues(STEP_S, 1)
    for t, v in events:
        series.change(t, v)
    assert series.sampled(n)[0].tolist() == _reference_steps(events, n)


def test_held_bins_sum_bit_for_bit_like_adding_to_the_array() -> None:
    rng = np.random.default_rng(4)
    starts = np.sort(rng.uniform(0, 40, 400))
    spans = [(float(s), float(s + d)) for s, d in zip(starts, rng.exponential(0.3, 400),
                                                      strict=True)]
    held = BinnedIntegral(STEP_S)
    plain: dict[int, float] = {}
    popped: list[float] = []
    for i, (s, e) in enumerate(spans):
        held.interval(s, e, 3.0)
        k, lo = bin_of(s, STEP_S), s  # the same pieces, added one by one
        while lo < e:
            hi = min(e, STEP_S * k)
            if hi > lo:
                plain[k] = plain.get(k, 0.0) + 3.0 * (hi - lo)
            lo, k = max(lo, hi), k + 1
        if i % 50 == 49:  # hand out bins well behind the newest span
            popped += held.pop_before(bin_of(s, STEP_S) - 4).tolist()
    rest = held.per_bin(max(plain)).tolist()
    assert popped + rest == [plain.get(k, 0.0) for k in range(1, max(plain) + 1)]


async def _waiter_trace(event: asyncio.Event | Wake) -> list[tuple[bool, float]]:
    """A task waiting on deadlines while the event is set at, before and after them."""
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    for at_s in (1.0, 3.0, 4.0, 6.0, 6.5):
        loop.call_at(at_s, event.set)
    trace = []
    for deadline_s in (2.0, 3.0, 5.0, 6.5, 7.0, 8.0):
        event.clear()
        trace.append((await clock.wait_until(deadline_s, event), loop.time()))
    return trace


def test_wake_waits_as_asyncio_event_with_timeout_does_but_for_a_tie() -> None:
    traces = []
    for make in (asyncio.Event, Wake):
        loop = VirtualTimeLoop()
        traces.append(loop.run_until_complete(_waiter_trace(make())))
        loop.close()
    # by hand: set at 1 < 2; set at 4 < 5, 6 < 6.5, 6.5 < 7; nothing before 8. At 3 the set and
    # the deadline run in one step, the set first, both before the waiter resumes: a Wake's
    # wait answers as soon as it is decided, so the set wins; asyncio.timeout's deadline
    # overrides an answer the waiter has not read yet, so there the deadline wins
    assert traces[1] == [(True, 1.0), (True, 3.0), (True, 4.0), (True, 6.0), (True, 6.5),
                         (False, 8.0)]
    assert traces[0] == [*traces[1][:1], (False, 3.0), *traces[1][2:]]


def test_a_wake_whose_waiter_was_cancelled_serves_the_next_wait() -> None:
    """A task cancelled in a deadline wait (an engine shutting down) leaves the Wake usable:
    the next wait gets its own answer, and the cancelled wait's deadline does not end it."""
    async def scenario() -> list[tuple[bool, float]]:
        loop = asyncio.get_running_loop()
        wake = Wake()
        first = loop.create_task(_await(wake.wait_for(5.0)))
        await asyncio.sleep(1.0)
        first.cancel()
        await asyncio.sleep(0.0)
        loop.call_at(7.0, wake.set)
        answers = [(await wake.wait_for(9.0), loop.time())]  # its 5.0 deadline is gone
        wake.clear()
        answers.append((await wake.wait_for(1.0), loop.time()))  # deadline at 8.0
        return answers

    loop = VirtualTimeLoop()
    assert loop.run_until_complete(scenario()) == [(True, 7.0), (False, 8.0)]
    loop.close()


async def _await(awaitable: Awaitable[bool]) -> bool:
    return await awaitable


def test_prefill_time_cache_answers_as_the_model() -> None:
    exp = load_experiment("experiments/quickstart.toml", {})
    hw, model, chips = exp.prefill.hardware, exp.model, exp.prefill.chips_per_unit
    for batch, cached in (([1000], None), ([3000, 20, 700], [0, 0, 512]), ([1000], None)):
        expected = perf_prefill._prefill_time(np.array(batch), model, hw, chips,
                                      None if cached is None else np.array(cached))
        assert perf_prefill.prefill_time(batch, model, hw, chips, cached) == expected


class _AwaitedStore:
    """A store whose ``get`` hands an awaitable, as Ray's does."""

    holds_bytes = False

    def put(self, value: object) -> object:
        return value

    async def get(self, ref: object) -> object:
        return ref


@pytest.mark.parametrize("path", ["experiments/quickstart.toml",
                                  "experiments/fabric_layerwise.toml"])
def test_payload_at_hand_or_awaited_gives_the_same_rows(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def rows() -> list[dict[str, object]]:
        exp = load_experiment(path, {"experiment.duration_s": 20.0, "experiment.engine": "virtual"})
        out: list[dict[str, object]] = []
        execute(exp, sink=lambda d: out.extend(d.rows))
        return sorted(out, key=lambda r: str(r["request_id"]))

    at_hand = rows()
    monkeypatch.setattr(virtual, "LocalStore", _AwaitedStore)
    assert rows() == at_hand and len(at_hand) > 10


def test_sketch_keys_made_unique_by_counting_as_by_sorting() -> None:
    rng = np.random.default_rng(5)
    for keys in (rng.integers(-300, 300, 5000), np.array([7]), np.array([-2**31, 4, 4, -2**31]),
                 np.zeros(0, dtype=np.int64)):
        fast, slow = sketch_keys.unique_keys(keys), np.unique(keys, return_inverse=True)
        assert fast[0].tolist() == slow[0].tolist() and fast[1].tolist() == slow[1].tolist()


def test_recent_boundaries_hold_the_last_ones_as_a_concatenation_would() -> None:
    rng = np.random.default_rng(6)
    recent, plain, t = RecentBoundaries(64), np.zeros(0), 0.0
    for k in rng.integers(1, 90, 200):
        bounds = t + np.cumsum(rng.uniform(0.01, 0.02, k))
        t = float(bounds[-1])
        recent.extend(bounds)
        plain = np.concatenate((plain, bounds))[-64:]
        assert recent.view().tolist() == plain.tolist()

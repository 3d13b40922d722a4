"""The load-balancing, SLO-aware and batching policies on hand-built views and queues."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_request
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.prefill import prefill_time
from disagg.policies import DECODE_ADMISSION, PREFILL_BATCHING, ROUTERS
from disagg.policies.base import (
    Batch,
    DecodeState,
    PendingDecode,
    PolicyContext,
    QueuedPrefill,
    Reject,
    Route,
    RouterView,
    UnitView,
    Wait,
    WaitUntil,
)

MODEL = get_model("llama-3.1-70b")


# CS-3 with a flat concurrency curve: the policies' own logic, not the curve, is under test
FLAT_CS3 = get_hardware("cs3").model_copy(update={"concurrency_exponent": 0.0})


def ctx(seed: int = 0) -> PolicyContext:
    return PolicyContext(MODEL, get_hardware("trainium2"), 4, FLAT_CS3, 4,
                         np.random.default_rng(seed))


def prefill(name: str, queued: int = 0, running: int = 0, up: bool = True, n: int = 0,
            free_at: float = 0.0) -> UnitView:
    return UnitView(name, "prefill", queued_requests=n, queued_tokens=queued,
                    running_tokens=running, up=up, free_at_s=free_at)


def decode(name: str, used: float = 0.0, cap: float = 1e12, running: int = 0, up: bool = True,
           ctx_tokens: int = 0) -> UnitView:
    return UnitView(name, "decode", running_requests=running, running_tokens=ctx_tokens,
                    kv_used_bytes=used, kv_capacity_bytes=cap, up=up)


def test_least_loaded_picks_fewest_outstanding_tokens() -> None:
    view = RouterView(0.0, (prefill("p0", 5000, 100), prefill("p1", 1000, 2000),
                            prefill("p2", 0, 0, up=False)), (decode("d0"),))
    assert ROUTERS.create("least_loaded", {}, ctx()).choose_prefill(make_request(), view) == \
        Route("p1")


def test_power_of_two_takes_the_less_loaded_of_two_samples() -> None:
    units = tuple(prefill(f"p{i}", 1000 * i) for i in range(6))
    view = RouterView(0.0, units, (decode("d0"),))
    policy = ROUTERS.create("power_of_two", {}, ctx(1))
    rng = np.random.default_rng(1)
    for _ in range(20):
        pair = rng.choice(6, size=2, replace=False)
        assert policy.choose_prefill(make_request(), view) == Route(f"p{min(pair)}")


def test_random_router_spreads_over_up_units_only() -> None:
    view = RouterView(0.0, (prefill("p0"), prefill("p1", up=False), prefill("p2")), ())
    policy = ROUTERS.create("random", {}, ctx(2))
    picks = {policy.choose_prefill(make_request(), view).unit for _ in range(50)}
    assert picks == {"p0", "p2"}


def test_kv_aware_decode_picks_most_headroom() -> None:
    view = RouterView(0.0, (prefill("p0"),),
                      (decode("d0", used=5e9, cap=10e9), decode("d1", used=1e9, cap=10e9),
                       decode("d2", used=0.0, cap=10e9, up=False)))
    assert ROUTERS.create("kv_aware", {}, ctx()).choose_decode(make_request(), view) == Route("d1")


def test_kv_aware_and_least_loaded_place_decode_by_different_rules() -> None:
    # d0: little KV free but almost no decode work left; d1: much KV free but a long backlog.
    d0 = UnitView("d0", "decode", queued_tokens=10, running_requests=4, kv_used_bytes=8e9,
                  kv_capacity_bytes=10e9)
    d1 = UnitView("d1", "decode", queued_tokens=50_000, running_requests=2, kv_used_bytes=1e9,
                  kv_capacity_bytes=10e9)
    view = RouterView(0.0, (prefill("p0"),), (d0, d1))
    assert ROUTERS.create("kv_aware", {}, ctx()).choose_decode(make_request(), view) == Route("d1")
    for name in ("least_loaded", "power_of_two"):
        assert ROUTERS.create(name, {}, ctx()).choose_decode(make_request(), view) == Route("d0")


def test_slo_aware_picks_earliest_first_token_and_rejects_what_cannot_make_it() -> None:
    policy = ROUTERS.create("slo_aware", {}, ctx())
    req = make_request(prompt_tokens=1000, ttft_slo_s=0.5)
    alone = prefill_time([1000], MODEL, get_hardware("trainium2"), 4).seconds
    busy = RouterView(0.0, (prefill("p0", free_at=0.3), prefill("p1", free_at=0.1)), (decode("d0"),))
    assert policy.choose_prefill(req, busy) == Route("p1")
    late = RouterView(0.0, (prefill("p0", free_at=0.5 - alone + 0.01),), (decode("d0"),))
    assert policy.choose_prefill(req, late) == Reject("slo_unattainable")
    ok = RouterView(0.0, (prefill("p0", free_at=0.5 - alone - 0.01),), (decode("d0"),))
    assert policy.choose_prefill(req, ok) == Route("p0")


def test_slo_aware_rejects_when_decode_hardware_is_too_slow() -> None:
    policy = ROUTERS.create("slo_aware", {}, ctx())
    req = make_request(tpot_slo_s=1 / 5000)  # CS-3 70B decodes ~2,100 tok/s per user
    view = RouterView(0.0, (prefill("p0"),), (decode("d0"),))
    assert policy.choose_prefill(req, view) == Reject("slo_unattainable")


ROUTER_NAMES = ["round_robin", "random", "least_loaded", "power_of_two", "kv_aware", "slo_aware"]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(ROUTER_NAMES),
       prefill_up=st.lists(st.booleans(), min_size=1, max_size=6),
       decode_state=st.lists(st.tuples(st.booleans(), st.floats(0, 1.0)), min_size=1, max_size=6),
       seed=st.integers(0, 1000))
def test_no_router_picks_a_down_or_full_unit(name, prefill_up, decode_state, seed) -> None:
    policy = ROUTERS.create(name, {}, ctx(seed))
    req = make_request(ttft_slo_s=1e9, tpot_slo_s=1e9)
    need = float(kv_bytes(req.prompt_tokens + req.output_tokens, MODEL))
    decodes = tuple(decode(f"d{i}", used=(1 - free) * 2 * need, cap=2 * need, up=up)
                    for i, (up, free) in enumerate(decode_state))
    view = RouterView(0.0, tuple(prefill(f"p{i}", up=u) for i, u in enumerate(prefill_up)), decodes)
    p = policy.choose_prefill(req, view)
    if any(prefill_up):
        assert isinstance(p, Route) and prefill_up[int(p.unit[1:])]
    else:
        assert isinstance(p, Reject)
    d = policy.choose_decode(req, view)
    if isinstance(d, Route):
        unit = decodes[int(d.unit[1:])]
        assert unit.up and unit.kv_free_bytes >= need
    else:
        assert isinstance(d, Wait | Reject)
        assert not any(u.up and u.kv_free_bytes >= need for u in decodes)


def _queue(*prompts: int, ttft: float = 1.0) -> tuple[QueuedPrefill, ...]:
    return tuple(QueuedPrefill(make_request(request_id=i, prompt_tokens=p, arrival_s=0.01 * i,
                                            ttft_slo_s=ttft), 0.01 * i)
                 for i, p in enumerate(prompts))


def test_edf_orders_by_ttft_deadline_across_classes() -> None:
    q = (QueuedPrefill(make_request(request_id=0, arrival_s=0.0, ttft_slo_s=5.0), 0.0),
         QueuedPrefill(make_request(request_id=1, arrival_s=0.1, ttft_slo_s=0.2), 0.1))
    policy = PREFILL_BATCHING.create("edf", {"max_batch_tokens": 1000}, ctx())
    assert policy.form_batch(q, 0.2) == Batch((1,))


def test_shortest_prompt_first_with_aging() -> None:
    policy = PREFILL_BATCHING.create("shortest_prompt_first",
                                     {"max_batch_tokens": 1000, "aging_s": 0.5}, ctx())
    q = _queue(900, 100, 200)
    assert policy.form_batch(q, 0.1) == Batch((1, 2))
    assert policy.form_batch(q, 0.6) == Batch((0, 1))  # all aged: oldest first


def test_batch_forming_waits_then_releases() -> None:
    policy = PREFILL_BATCHING.create(
        "batch_forming", {"max_batch_tokens": 4096, "max_wait_s": 0.05}, ctx())
    q = _queue(500, 500)
    assert policy.form_batch(q, 0.01) == WaitUntil(0.05)
    assert policy.form_batch(q, 0.05) == Batch((0, 1))
    full = _queue(3000, 2000)
    assert policy.form_batch(full, 0.01) == Batch((0,))  # the budget is filled: go now


def test_batch_forming_releases_early_when_slack_runs_low() -> None:
    policy = PREFILL_BATCHING.create(
        "batch_forming", {"max_batch_tokens": 8192, "max_wait_s": 10.0}, ctx())
    q = _queue(1000, ttft=0.5)
    run = prefill_time([1000], MODEL, get_hardware("trainium2"), 4).seconds
    decision = policy.form_batch(q, 0.0)
    assert decision == WaitUntil(pytest.approx(0.5 - run))


def test_tpot_aware_admission_caps_the_batch() -> None:
    policy = DECODE_ADMISSION.create("tpot_aware", {}, ctx())
    # the CS-3 latency floor for one 70B stream on 4 wafers, by hand from the pipeline model
    # (docs/calibration.md): per token, per layer (fixed + per parameter + the layer's 2 x params
    # FLOPs over its share of a wafer's BF16 peak), and 3 wafer-to-wafer hops
    hw, layer_params = FLAT_CS3, MODEL.layer_active_params
    share_flops = hw.peak_flops_bf16 * hw.pipeline_compute_efficiency * 4 / MODEL.layers
    per_layer = (hw.layer_latency_s + hw.layer_latency_s_per_gparam * layer_params / 1e9
                 + 2.0 * layer_params / share_flops)
    step = hw.token_latency_s + MODEL.layers * per_layer + 3 * hw.hop_latency_s
    tight = tuple(PendingDecode(make_request(request_id=i, tpot_slo_s=step * 1.001), 1e6, 0.0)
                  for i in range(5))
    assert policy.admit(tight, DecodeState(0.0, 0, 0.0, 1e12)) == (0, 1, 2, 3, 4)
    too_tight = tuple(PendingDecode(make_request(request_id=i, tpot_slo_s=step / 2), 1e6, 0.0)
                      for i in range(3))
    assert policy.admit(too_tight, DecodeState(0.0, 0, 0.0, 1e12)) == (0,)  # never starve


BATCHERS = [("fcfs", {}), ("edf", {}), ("shortest_prompt_first", {"aging_s": 0.2}),
            ("batch_forming", {"max_wait_s": 0.01})]


@settings(max_examples=80, deadline=None)
@given(which=st.sampled_from(BATCHERS), budget=st.integers(1, 8192),
       prompts=st.lists(st.integers(1, 10_000), min_size=1, max_size=30),
       now=st.floats(0.0, 2.0))
def test_no_batcher_exceeds_its_budget(which, budget, prompts, now) -> None:
    name, params = which
    policy = PREFILL_BATCHING.create(name, {**params, "max_batch_tokens": budget}, ctx())
    queue = _queue(*prompts)
    decision = policy.form_batch(queue, max(now, queue[-1].queued_s))
    if isinstance(decision, Batch):
        ids = decision.request_ids
        assert ids and len(set(ids)) == len(ids)
        assert sum(prompts[i] for i in ids) <= budget or len(ids) == 1
    else:
        assert decision.time_s > max(now, queue[-1].queued_s)


@settings(max_examples=60, deadline=None)
@given(arrivals=st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 4000)),
                         min_size=1, max_size=60))
def test_shortest_prompt_first_with_aging_never_starves(arrivals) -> None:
    """One server, service time proportional to batch tokens. Whatever shorter prompts keep
    arriving later, a request starts within aging_s plus the work that arrived before it."""
    aging, per_token, budget = 0.3, 1e-4, 4096
    policy = PREFILL_BATCHING.create("shortest_prompt_first",
                                     {"max_batch_tokens": budget, "aging_s": aging}, ctx())
    reqs = sorted((t, i, p) for i, (t, p) in enumerate(arrivals))
    pending, queue, start, t = list(reqs), [], {}, 0.0
    while pending or queue:
        if not queue:
            t = max(t, pending[0][0])
        while pending and pending[0][0] <= t:
            a, i, p = pending.pop(0)
            queue.append(QueuedPrefill(make_request(request_id=i, prompt_tokens=p, arrival_s=a), a))
        batch = policy.form_batch(tuple(queue), t)
        assert isinstance(batch, Batch)
        chosen = [q for q in queue if q.request.request_id in batch.request_ids]
        for q in chosen:
            start[q.request.request_id] = t
        queue = [q for q in queue if q.request.request_id not in batch.request_ids]
        t += per_token * sum(q.request.prompt_tokens for q in chosen)
    longest = per_token * max(budget, max(p for _, _, p in reqs))  # the batch in progress
    for a, i, p in reqs:
        earlier = per_token * sum(pp for aa, ii, pp in reqs if (aa, ii) < (a, i))
        assert start[i] - a <= aging + longest + earlier + 1e-9

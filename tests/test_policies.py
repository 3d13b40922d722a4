"""Policies on hand-built views, the registry, and property tests."""

from __future__ import annotations

import pytest
from conftest import make_request
from hypothesis import given, settings
from hypothesis import strategies as st

from disagg.cluster.errors import ConfigError
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import kv_bytes
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
)
from disagg.policies.registry import DuplicatePolicy, Registry, UnknownPolicy

CTX = PolicyContext(get_model("llama-3.1-70b"), get_hardware("trainium2"), 4,
                    get_hardware("cs3"), 4)


def _view(prefill_up=(True, True, True), decode_free=(1e12, 1e12)) -> RouterView:
    return RouterView(
        0.0,
        tuple(UnitView(f"prefill-{i}", "prefill", up=up) for i, up in enumerate(prefill_up)),
        tuple(UnitView(f"decode-{i}", "decode", kv_capacity_bytes=free)
              for i, free in enumerate(decode_free)),
    )


def test_round_robin_cycles_and_skips_down_units() -> None:
    rr = ROUTERS.create("round_robin", {}, CTX)
    view = _view(prefill_up=(True, False, True))
    picks = [rr.choose_prefill(make_request(), view) for _ in range(4)]
    assert picks == [Route("prefill-0"), Route("prefill-2"), Route("prefill-0"), Route("prefill-2")]


def test_round_robin_rejects_when_every_prefill_unit_is_down() -> None:
    rr = ROUTERS.create("round_robin", {}, CTX)
    assert isinstance(rr.choose_prefill(make_request(), _view(prefill_up=(False,))), Reject)


def test_round_robin_decode_waits_when_full_and_rejects_when_never_fits() -> None:
    rr = ROUTERS.create("round_robin", {}, CTX)
    need = kv_bytes(1100, CTX.model)
    full = RouterView(0.0, (), (UnitView("decode-0", "decode", kv_used_bytes=need,
                                         kv_capacity_bytes=need * 1.5),))
    assert isinstance(rr.choose_decode(make_request(), full), Wait)
    tiny = _view(decode_free=(need / 2,))
    assert rr.choose_decode(make_request(), tiny) == Reject("kv_exceeds_decode_capacity")
    ok = _view(decode_free=(need / 2, need * 2))
    assert rr.choose_decode(make_request(), ok) == Route("decode-1")


def test_fcfs_batch_respects_budget_and_order() -> None:
    fcfs = PREFILL_BATCHING.create("fcfs", {"max_batch_tokens": 2500}, CTX)
    queue = tuple(QueuedPrefill(make_request(request_id=i, prompt_tokens=1000), i) for i in range(4))
    assert fcfs.form_batch(queue, 0.0) == Batch((0, 1))


def test_fcfs_runs_a_lone_oversized_prompt() -> None:
    fcfs = PREFILL_BATCHING.create("fcfs", {"max_batch_tokens": 500}, CTX)
    queue = (QueuedPrefill(make_request(request_id=9, prompt_tokens=4000), 0.0),)
    assert fcfs.form_batch(queue, 0.0) == Batch((9,))


def test_registry_rejects_duplicates_and_explains_unknown_names() -> None:
    reg: Registry[object] = Registry("demo")
    reg.register("a")(dict)
    with pytest.raises(DuplicatePolicy):
        reg.register("a")(dict)
    with pytest.raises(UnknownPolicy, match="known: a"):
        reg.factory("b")
    with pytest.raises(ConfigError, match="unknown parameter"):
        PREFILL_BATCHING.create("fcfs", {"bogus": 1}, CTX)
    with pytest.raises(ConfigError, match=">= 1"):
        PREFILL_BATCHING.create("fcfs", {"max_batch_tokens": 0}, CTX)


def test_registry_loads_dotted_path() -> None:
    policy = ROUTERS.create("disagg.policies.router.RoundRobin", {}, CTX)
    assert policy.choose_prefill(make_request(), _view()) == Route("prefill-0")
    with pytest.raises(UnknownPolicy, match="cannot be imported"):
        ROUTERS.factory("no.such.module.Policy")


@settings(max_examples=200, deadline=None)
@given(prompts=st.lists(st.integers(1, 20_000), min_size=1, max_size=40),
       budget=st.integers(1, 16_384), cap=st.integers(1, 64))
def test_prefill_batch_never_exceeds_budget(prompts, budget, cap) -> None:
    fcfs = PREFILL_BATCHING.create("fcfs", {"max_batch_tokens": budget, "max_batch_requests": cap},
                                   CTX)
    queue = tuple(QueuedPrefill(make_request(request_id=i, prompt_tokens=p), float(i))
                  for i, p in enumerate(prompts))
    batch = fcfs.form_batch(queue, 0.0)
    assert isinstance(batch, Batch) and batch.request_ids
    assert batch.request_ids == tuple(range(len(batch.request_ids)))  # a queue-order prefix
    tokens = sum(prompts[i] for i in batch.request_ids)
    assert len(batch.request_ids) <= cap
    assert tokens <= budget or len(batch.request_ids) == 1


@settings(max_examples=200, deadline=None)
@given(needs=st.lists(st.floats(1.0, 1e9), min_size=0, max_size=30),
       used=st.floats(0, 5e9), cap=st.floats(1.0, 1e10), running=st.integers(0, 300),
       max_batch=st.integers(1, 256))
def test_decode_admission_never_exceeds_kv_capacity(needs, used, cap, running, max_batch) -> None:
    fcfs = DECODE_ADMISSION.create("fcfs", {"max_batch_requests": max_batch}, CTX)
    pending = tuple(PendingDecode(make_request(request_id=i), n, 0.0) for i, n in enumerate(needs))
    admitted = fcfs.admit(pending, DecodeState(0.0, running, used, cap))
    admitted_bytes = sum(needs[i] for i in admitted)
    assert used + admitted_bytes <= max(cap, used)
    assert running + len(admitted) <= max(max_batch, running)
    assert admitted == tuple(range(len(admitted)))


@settings(max_examples=100, deadline=None)
@given(ups=st.lists(st.booleans(), min_size=1, max_size=8), n=st.integers(1, 30))
def test_router_never_picks_a_down_unit(ups, n) -> None:
    rr = ROUTERS.create("round_robin", {}, CTX)
    view = _view(prefill_up=tuple(ups))
    down = {f"prefill-{i}" for i, up in enumerate(ups) if not up}
    for _ in range(n):
        d = rr.choose_prefill(make_request(), view)
        assert isinstance(d, Reject) if not any(ups) else d.unit not in down

"""The serving gateway on the virtual engine (no Ray, no HTTP): the token times the units feed it
are the run's own token times, requests end once each, and arrivals enter the router as usual."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from conftest import make_experiment

from disagg.actors.components.gateway import (
    SCHEDULE_WAIT_S,
    Gateway,
    GatewayClosed,
    PlanUpdate,
    TokenPlan,
)
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.build import build_component
from disagg.actors.engines.virtual import LocalPeer, VirtualClock, VirtualTimeLoop
from disagg.cluster.facts import component_names
from disagg.cluster.messages import FirstTokenPlanned, Request
from disagg.cluster.workload.plan import SloTargets
from disagg.experiments.serve.metrics import ServeMetrics
from disagg.experiments.serve.pacing import Due, TokenPacer


class _Recorded:
    """A peer that also keeps every message sent through it, in send order."""

    def __init__(self, peer: Any, log: list[Any]) -> None:
        self.peer, self.log = peer, log

    def send(self, message: Any) -> None:
        self.log.append(message)
        self.peer.send(message)


def _serve_virtually(exp, arrivals: list[tuple[float, int, int]],
                     to_gateway: list[Any] | None = None) -> tuple[Gateway, dict]:
    """Run the serving components on virtual time; submit (emu s, prompt, output) arrivals
    (``to_gateway``: keeps every message the cluster sends the gateway)."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    store = LocalStore()

    async def drive() -> tuple[Gateway, dict]:
        comps = {n: build_component(exp, n, clock, store, serving=True)
                 for n in component_names(exp, serving=True)}
        peers: dict[str, Any] = {n: LocalPeer(loop, c, 0.0) for n, c in comps.items()}
        if to_gateway is not None:
            peers["gateway"] = _Recorded(peers["gateway"], to_gateway)
        for c in comps.values():
            c.connect(peers)
        tasks = [loop.create_task(c.run()) for c in comps.values()]
        gateway = comps["gateway"]
        for at_s, prompt, output in arrivals:
            await clock.sleep_until(at_s)
            gateway.submit(prompt, output, clock.now())
        gateway.close()
        await asyncio.wait_for(comps["collector"].done.wait(), 600.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rows = comps["collector"].drain(final=True).rows  # the collector's folded rows
        return gateway, {"requests": rows}

    try:
        return loop.run_until_complete(drive())
    finally:
        loop.close()


def test_gateway_plans_are_the_runs_token_times_under_joins() -> None:
    exp = make_experiment()
    # 12 requests 50 ms apart: decode batches change as they join, so plans get re-planned
    arrivals = [(0.05 * i, 500 + 100 * i, 150 + 7 * i) for i in range(12)]
    gateway, raw = _serve_virtually(exp, arrivals)
    rows = {r["request_id"]: r for r in raw["requests"]}
    assert len(rows) == 12 and all(r["status"] == "completed" for r in rows.values())
    for rid, plan in gateway.plans.items():
        row = rows[rid]
        assert (row["prompt_tokens"], row["output_tokens"]) == arrivals[rid][1:]
        assert plan.first_token_s == pytest.approx(row["first_token_s"], abs=1e-12)
        assert len(plan.decode_times_s) == row["output_tokens"] - 1
        assert plan.decode_times_s == sorted(plan.decode_times_s)
        assert plan.decode_times_s[-1] == pytest.approx(row["last_token_s"], abs=1e-12)
        assert plan.decode_times_s[0] == pytest.approx(row["first_decode_token_s"], abs=1e-12)
        assert plan.prefill_unit == row["prefill_unit"] and plan.decode_unit == row["decode_unit"]
        assert plan.status == "completed"
        assert not plan.awaits_schedule(plan.end_s)  # in send order no outcome waits
    outcomes = gateway.outcomes(0)
    assert sorted(o.request_id for o in outcomes) == list(range(12))
    assert gateway.outcomes(12) == []


def test_one_token_outputs_end_at_prefill_and_closed_gateway_refuses() -> None:
    gateway, raw = _serve_virtually(make_experiment(), [(0.0, 300, 1), (0.01, 300, 2)])
    rows = {r["request_id"]: r for r in raw["requests"]}
    assert gateway.plans[0].decode_times_s == [] and gateway.plans[0].status == "completed"
    assert gateway.plans[0].first_token_s == pytest.approx(rows[0]["last_token_s"])
    assert len(gateway.plans[1].decode_times_s) == 1
    with pytest.raises(GatewayClosed):
        gateway.submit(10, 10, 1.0)


def test_replan_keeps_earlier_tokens_and_caps_at_the_output_length() -> None:
    plan = TokenPlan(Request(0, 0.0, 10, 5))
    plan.replan(1.0, (1.1, 1.2, 1.3))
    plan.replan(1.2, (1.25, 1.35, 1.45, 1.55))  # a join cut the run at 1.2: 1.3 is re-planned
    assert plan.decode_times_s == [1.1, 1.2, 1.25, 1.35]  # 4 = output_tokens - 1 decode tokens
    update = plan.update(2)
    assert update.decode_times_s == (1.25, 1.35) and update.from_index == 2


def test_preemptions_reach_the_gateway_and_vllms_counter() -> None:
    """The hand-computed preemption case of tests/test_paged_kv.py served through the gateway:
    the request the decode unit preempted (once) is counted once in
    ``vllm:num_preemptions_total`` on that unit, the other not at all."""
    from disagg.cluster.config import experiment_from_dict
    from disagg.cluster.hardware.catalog import get_model
    from disagg.cluster.hardware.perf import kv_bytes
    from disagg.experiments.serve.metrics import ServeMetrics

    from conftest import experiment_dict

    l8b = get_model("llama-3.1-8b")
    block = float(kv_bytes(16, l8b))
    gpu = {"hardware": "h100", "chips_per_unit": 1, "units": 1}
    tiny = {"name": "h100", "memory_bytes": l8b.weight_bytes + 10.5 * block}
    exp = experiment_from_dict(experiment_dict(
        model="llama-3.1-8b", prefill=gpu, decode={**gpu, "hardware": tiny}))
    gateway, raw = _serve_virtually(exp, [(0.01, 47, 60), (0.02, 47, 60)])
    rows = {r["request_id"]: r for r in raw["requests"]}
    outcomes = {o.request_id: o for o in gateway.outcomes(0)}
    assert {rid: o.preemptions for rid, o in outcomes.items()} == {0: 0, 1: 1}
    assert {rid: r["preemptions"] for rid, r in rows.items()} == {0: 0, 1: 1}
    metrics = ServeMetrics("llama-3.1-8b", 131072, 1.0)
    metrics.add_outcomes(list(outcomes.values()))
    text = metrics.exposition().decode()
    assert 'vllm:num_preemptions_total{engine="decode-0",model_name="llama-3.1-8b"} 1.0' in text


class _Sink:
    def send(self, message: Any) -> None:
        pass


class _OneMessagePerPoll:
    """The HTTP side's backend over a fresh gateway that is handed the next of a run's messages
    at each long-poll (in a delivery order the test chooses); every token is due at once."""

    dilation = 0.0

    def __init__(self, gateway: Gateway, messages: list[Any]) -> None:
        self.gateway, self.messages = gateway, messages
        self.t0 = time.time()

    async def wait(self, rid: int, version: int, from_index: int, timeout_s: float
                   ) -> PlanUpdate:
        assert self.messages, "the pacer polled past the run's last message"
        self.gateway.deliver(self.messages.pop(0))
        return self.gateway.plans[rid].update(from_index)


KINDS = ("DecodeJoined", "TokenSchedule", "RequestEnded")
_RUNS: dict[int, list[Any]] = {}


def _gateway_messages(output_tokens: int) -> list[Any]:
    """The messages a virtual run of one 300-token prompt sends the gateway (run once each)."""
    if output_tokens not in _RUNS:
        _serve_virtually(make_experiment(), [(0.0, 300, output_tokens)],
                         _RUNS.setdefault(output_tokens, []))
    return _RUNS[output_tokens]


def _fresh_gateway(output_tokens: int) -> tuple[Gateway, VirtualTimeLoop]:
    """A gateway that took one 300-token prompt at emu 0, and the loop its clock reads (closed:
    its handlers read no time; :meth:`Gateway.outcomes` reads ``loop.now_s``)."""
    loop = VirtualTimeLoop()
    gateway = Gateway("gateway", VirtualClock(loop), SloTargets(1.0, 0.05))
    gateway.connect({"router": _Sink(), "collector": _Sink()})
    gateway.submit(300, output_tokens, 0.0)
    loop.close()
    return gateway, loop


def _replayed(output_tokens: int, messages: list[Any]) -> tuple[ServeMetrics, Gateway]:
    """A fresh gateway handed ``messages`` one per long-poll of a real pacer, whose released
    tokens feed the metrics; then the messages the pacer did not need. Every token is due at
    once (dilation 0), so the delivery order alone decides what the pacer knows."""
    gateway, _ = _fresh_gateway(output_tokens)
    backend = _OneMessagePerPoll(gateway, list(messages))
    pacer = TokenPacer(backend, 0, output_tokens, 0.0)  # type: ignore[arg-type]
    metrics = ServeMetrics("m", 4096, 1.0)

    async def stream() -> None:
        async for ev in pacer.events():
            assert isinstance(ev, Due)
            metrics.released(pacer, ev, 300)

    asyncio.run(stream())
    for m in backend.messages:  # the rest of the run's messages
        gateway.deliver(m)
    return metrics, gateway


def _counted(metrics: ServeMetrics, name: str) -> dict[str, float]:
    """A counter's totals by unit (``engine`` label)."""
    return {s.labels["engine"]: s.value for f in metrics.registry.collect() if f.name == name
            for s in f.samples if s.name.endswith("_total")}


def _in_order(log: list[Any], order: tuple[str, ...]) -> list[Any]:
    """The run's messages grouped by kind, the kinds in ``order``."""
    return [m for kind in order for m in log if type(m).__name__ == kind]


@pytest.mark.parametrize("order", list(itertools.permutations(KINDS)), ids="-".join)
def test_decode_tokens_count_on_the_decode_unit_whatever_reaches_the_gateway_first(
        order: tuple[str, ...]) -> None:
    """On the ray engine a decode unit sends ``DecodeJoined`` and ``TokenSchedule`` straight to
    the gateway, but the request's end goes through the collector, so any of them can come
    first (tests/test_serve_ray.py once had a decode token counted on ``prefill-0``). In every
    order the first token counts on the prefill unit and each later one, once, on the decode
    unit; the finished request names its decode unit and decode token times."""
    log = _gateway_messages(3)
    first, rest = log[0], log[1:]
    assert isinstance(first, FirstTokenPlanned)
    assert sorted({type(m).__name__ for m in rest}) == sorted(KINDS)
    decode_unit = next(m.decode_unit for m in rest if type(m).__name__ == "DecodeJoined")
    metrics, gateway = _replayed(3, [first, *_in_order(rest, order)])
    assert _counted(metrics, "vllm:generation_tokens") == {first.prefill_unit: 1.0,
                                                           decode_unit: 2.0}
    (outcome,) = gateway.outcomes(0)
    assert outcome.decode_unit == decode_unit and len(outcome.decode_times_s) == 2


def test_an_outcome_waits_for_the_decode_token_times_its_end_overtook() -> None:
    """On the ray engine the end (through the collector) can overtake the decode unit's
    ``TokenSchedule`` (straight to the gateway). A /metrics scrape between the two would fold
    the request without its inter-token latencies, for good (the cursor moves on): its outcome
    waits for them, and for at most SCHEDULE_WAIT_S after its end."""
    order = ("FirstTokenPlanned", "DecodeJoined", "RequestEnded", "TokenSchedule")
    messages = _in_order(_gateway_messages(3), order)
    gateway, loop = _fresh_gateway(3)
    for i, m in enumerate(messages):
        gateway.deliver(m)
        assert len(gateway.outcomes(0)) == (i == len(messages) - 1)  # once every time is in
    (outcome,) = gateway.outcomes(0)
    assert len(outcome.decode_times_s) == 2 and outcome.decode_times_s[-1] == outcome.end_s
    gateway, loop = _fresh_gateway(3)  # a schedule that never comes
    for m in messages[:-1]:
        gateway.deliver(m)
    end_s = gateway.plans[0].end_s
    loop.now_s = end_s + SCHEDULE_WAIT_S - 1e-6
    assert gateway.outcomes(0) == []
    loop.now_s = end_s + SCHEDULE_WAIT_S  # then it goes as it is: every end is folded
    assert [o.request_id for o in gateway.outcomes(0)] == [0]


ORDERS = [(1, order) for order in itertools.permutations(("FirstTokenPlanned", "RequestEnded"))] \
    + [(3, order) for order in itertools.permutations(("FirstTokenPlanned", *KINDS))
       if order[0] != "FirstTokenPlanned"]  # (first: the test above)


@pytest.mark.parametrize(("output_tokens", "order"), ORDERS,
                         ids=[f"{n}-{'-'.join(o)}" for n, o in ORDERS])
def test_prompt_and_first_token_count_on_the_prefill_unit_whatever_reaches_the_gateway_first(
        output_tokens: int, order: tuple[str, ...]) -> None:
    """The prefill unit sends ``FirstTokenPlanned`` straight to the gateway, but the request's
    end comes through the collector (a one-token request ends at the prefill unit itself) and
    the decode unit's notices from another unit, so on the ray engine any of them can come
    first. In every order the prompt and the first token count on the prefill unit, later
    tokens on the decode unit, and the finished request has the prefill unit's first token
    time, as on the virtual engine."""
    log = _gateway_messages(output_tokens)
    assert sorted(type(m).__name__ for m in log) == sorted(set(order))
    first = next(m for m in log if isinstance(m, FirstTokenPlanned))
    decode_unit = next((m.decode_unit for m in log if type(m).__name__ == "DecodeJoined"), "")
    metrics, gateway = _replayed(output_tokens, _in_order(log, order))
    later = {decode_unit: output_tokens - 1.0} if decode_unit else {}
    assert _counted(metrics, "vllm:prompt_tokens") == {first.prefill_unit: 300.0}
    assert _counted(metrics, "vllm:generation_tokens") == {first.prefill_unit: 1.0, **later}
    (outcome,) = gateway.outcomes(0)
    assert (outcome.prefill_unit, outcome.first_token_s, outcome.prefill_start_s) == (
        first.prefill_unit, first.first_token_s, first.prefill_start_s)

"""A request that reaches a prefill unit after the unit started a batch at a later modeled time
(lag on the ray engine) re-forms that batch: the unit decides again as it would have on time."""

from __future__ import annotations

import pytest
from conftest import make_request

from disagg.actors.components.prefill import PrefillUnit
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.prefill import prefill_time
from disagg.cluster.messages import KvReady, PrefillAssigned
from disagg.cluster.records import PrefillRecord
from disagg.policies.batching import FcfsBatching

MODEL, HW = get_model("llama-3.1-70b"), get_hardware("trainium2")


def batch_s(*prompts: int) -> float:
    """Modeled prefill time of one batch of ``prompts`` on a TP4 Trainium2 unit (the model's)."""
    return prefill_time(list(prompts), MODEL, HW, 4).seconds


class _Sink:
    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append(msg)


# (request id, prompt tokens, modeled arrival emu s, delivered at emu s)
Arrival = tuple[int, int, float, float]


def _run(arrivals: list[Arrival], layer_wise: bool = False
         ) -> tuple[PrefillUnit, dict[int, PrefillRecord]]:
    """Deliver ``arrivals`` to one prefill unit on virtual time; its record of each request."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    unit = PrefillUnit("prefill-0", clock, MODEL, HW, 4, FcfsBatching(), LocalStore(), 1e-6,
                       layer_wise=layer_wise)
    router = _Sink()
    unit.connect({"collector": _Sink(), "router": router})

    def deliver(rid: int, prompt: int, modeled_s: float) -> None:
        req = make_request(request_id=rid, prompt_tokens=prompt, arrival_s=modeled_s)
        unit.deliver(PrefillAssigned(req, modeled_s))

    async def drive() -> None:
        task = loop.create_task(unit.run())
        for rid, prompt, modeled_s, at_s in arrivals:
            loop.call_at(at_s, deliver, rid, prompt, modeled_s)
        await clock.sleep_until(3.0)
        task.cancel()

    loop.run_until_complete(drive())
    loop.close()
    records = {}
    for msg in router.got:
        if isinstance(msg, KvReady):
            [rec] = [r for r in msg.records if isinstance(r, PrefillRecord)]
            records[rec.request_id] = rec
    return unit, records


def _times(records: dict[int, PrefillRecord], rid: int) -> tuple[float, float]:
    return records[rid].prefill_start_s, records[rid].first_token_s


def test_late_request_to_an_idle_unit_starts_at_its_arrival() -> None:
    # r0 runs 0 .. 0.204; r1 (500 tokens) arrives at 0.25 when the unit is idle, but reaches it
    # at 0.35, after r2 (arrived 0.30) started: on time r1 runs first and r2 waits for it
    late = [(0, 1000, 0.0, 0.0), (2, 1000, 0.30, 0.30), (1, 500, 0.25, 0.35)]
    unit, records = _run(late)
    r1_end = 0.25 + batch_s(500)
    assert _times(records, 1) == pytest.approx((0.25, r1_end), abs=1e-9)
    assert _times(records, 2) == pytest.approx((r1_end, r1_end + batch_s(1000)), abs=1e-9)
    assert unit.gate.reformed_batches == 1 and unit.late_decisions == 0
    assert unit.batches == 3 and unit.decisions == 3
    _, on_time = _run([(0, 1000, 0.0, 0.0), (1, 500, 0.25, 0.25), (2, 1000, 0.30, 0.30)])
    assert records == on_time


def test_late_request_joins_the_batch_it_missed() -> None:
    # r0 runs 0 .. 0.204 while r2 (0.10) and r1 (0.15) queue; r1 reaches the unit only at 0.25,
    # after a batch of r2 alone started at 0.204: on time both form one FCFS batch there
    r0_end = batch_s(1000)
    unit, records = _run([(0, 1000, 0.0, 0.0), (2, 1000, 0.10, 0.10), (1, 500, 0.15, 0.25)])
    both = (r0_end, r0_end + batch_s(1000, 500))
    assert _times(records, 2) == pytest.approx(both, abs=1e-9)
    assert _times(records, 1) == pytest.approx(both, abs=1e-9)
    assert unit.gate.reformed_batches == 1 and unit.batches == 2 and unit.late_decisions == 0
    assert unit.log.as_dict()["busy_s"] == pytest.approx(both[1], abs=1e-9)


def test_a_batch_whose_kv_already_left_is_not_reformed() -> None:
    # layer-wise: the batch of r2 handed its KV to the router at its start, so r1 waits and the
    # late arrival stays a late decision
    r0_end = batch_s(1000)
    unit, records = _run([(0, 1000, 0.0, 0.0), (2, 1000, 0.10, 0.10), (1, 500, 0.15, 0.25)],
                         layer_wise=True)
    r2_end = r0_end + batch_s(1000)
    assert _times(records, 2) == pytest.approx((r0_end, r2_end), abs=1e-9)
    assert _times(records, 1) == pytest.approx((r2_end, r2_end + batch_s(500)), abs=1e-9)
    assert unit.gate.reformed_batches == 0 and unit.late_decisions == 1


def test_on_time_requests_are_never_reformed() -> None:
    unit, records = _run([(0, 1000, 0.0, 0.0), (1, 500, 0.10, 0.10), (2, 1000, 0.15, 0.15)])
    assert unit.gate.reformed_batches == 0 and unit.late_decisions == 0
    assert _times(records, 1) == pytest.approx((batch_s(1000),
                                                batch_s(1000) + batch_s(500, 1000)), abs=1e-9)

"""A decode unit's running batch steps from loop timers (``actors/components/decode_timers.py``):
a KV that arrives while the batch runs re-aims the next boundary, and a unit whose task is
cancelled runs no boundary afterwards. Timings by hand: every step takes exactly ``STEP``."""

from __future__ import annotations

import pytest
from conftest import make_request

from disagg.actors.components.decode import DecodeUnit
from disagg.actors.components.store import LocalStore
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.messages import KvDelivered, RequestEnded
from disagg.fabric.payload import make_payload
from disagg.policies.batching import FcfsAdmission

STEP = 1 / 2100
FLAT_CS3 = get_hardware("cs3").model_copy(update={
    "concurrency_exponent": 0.0, "layer_latency_s": 0.0, "layer_latency_s_per_gparam": 0.0,
    "pipeline_compute_efficiency": 0.0,
    "token_latency_s": STEP - 3 * get_hardware("cs3").hop_latency_s})


class _Sink:
    def __init__(self) -> None:
        self.got: list[object] = []

    def send(self, msg: object) -> None:
        self.got.append(msg)


def _unit(loop: VirtualTimeLoop) -> tuple[DecodeUnit, _Sink]:
    unit = DecodeUnit("decode-0", VirtualClock(loop), get_model("llama-3.1-70b"), FLAT_CS3, 4,
                      FcfsAdmission(256), LocalStore(), 1e11)
    collector = _Sink()
    unit.connect({"collector": collector, "router": _Sink(), "gateway": _Sink()})
    return unit, collector


def _deliver(unit: DecodeUnit, rid: int, tokens: int) -> None:
    """Request ``rid``'s KV (1,000-token prompt, ``tokens`` output tokens) arrives now."""
    now = unit.clock.now()
    req = make_request(request_id=rid, output_tokens=tokens, tpot_slo_s=1.0)
    payload = make_payload(rid, req.prompt_tokens, unit.model.name, 2, 80,
                           float(kv_bytes(1000, unit.model)), 0.0)
    unit.deliver(KvDelivered(req, "prefill-0", 1.0, payload, now, sent_s=now))


def _ends(collector: _Sink) -> dict[int, float]:
    return {m.request_id: m.sent_s for m in collector.got if isinstance(m, RequestEnded)}


def test_a_kv_arriving_mid_run_joins_at_the_next_boundary_and_both_finish_on_time() -> None:
    loop = VirtualTimeLoop()
    unit, collector = _unit(loop)

    async def drive() -> None:
        task = loop.create_task(unit.run())
        loop.call_at(0.0, _deliver, unit, 0, 101)  # the first token came with prefill: 100 steps
        joins_s = 10.5 * STEP  # mid-step: it joins at the 11th boundary
        loop.call_at(joins_s, _deliver, unit, 1, 21)
        await unit.clock.sleep_until(1.0)
        assert not task.done()
        task.cancel()

    loop.run_until_complete(drive())
    loop.close()
    ends = _ends(collector)
    assert ends[0] == pytest.approx(100 * STEP, rel=1e-9)
    assert ends[1] == pytest.approx((11 + 20) * STEP, rel=1e-9)


def test_a_cancelled_unit_runs_no_boundary_afterwards() -> None:
    loop = VirtualTimeLoop()
    unit, collector = _unit(loop)

    async def drive() -> None:
        task = loop.create_task(unit.run())
        loop.call_at(0.0, _deliver, unit, 0, 1001)  # busy until 1000 steps (~0.48 s)
        await unit.clock.sleep_until(0.1)
        task.cancel()
        await unit.clock.sleep_until(1.0)  # past the request's end

    loop.run_until_complete(drive())
    loop.close()
    assert _ends(collector) == {}
    assert unit.t <= 0.1  # no boundary committed after the cancel
    assert unit._timer is None and unit._handoff is None and not unit._due

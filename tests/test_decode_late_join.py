"""A KV that reaches a busy decode unit after the unit moved past its modeled arrival (lag on the
ray engine) joins at the first past iteration boundary at or after that arrival."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import make_request

from disagg.actors.components.decode import DecodeUnit
from disagg.actors.components.store import LocalStore
from disagg.actors.components.token_feed import TokenFeed
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.messages import KvDelivered, SpeedChanged
from disagg.cluster.paged_kv import PagedKv
from disagg.cluster.records import DecodeRecord
from disagg.fabric.payload import make_payload
from disagg.policies.batching import FcfsAdmission

STEP = 1 / 2100  # Llama-3.1-70B on 4 CS-3 at the latency floor (the timings below assume it)
# a flat concurrency curve and a per-token cost that make every step exactly STEP
FLAT_CS3 = get_hardware("cs3").model_copy(update={
    "concurrency_exponent": 0.0, "layer_latency_s": 0.0, "layer_latency_s_per_gparam": 0.0,
    "pipeline_compute_efficiency": 0.0, "token_latency_s": STEP - 3 * get_hardware("cs3").hop_latency_s})


class _Sink:
    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append(msg)


def _deliver(unit: DecodeUnit, rid: int, ready_s: float, tokens: int) -> None:
    """Request ``rid`` (1,000-token prompt, ``tokens`` output tokens): its KV reaches ``unit``
    now, modeled to arrive at ``ready_s``."""
    req = make_request(request_id=rid, output_tokens=tokens, tpot_slo_s=1.0)
    payload = make_payload(rid, req.prompt_tokens, unit.model.name, 2, 80,
                           float(kv_bytes(1000, unit.model)), 0.0)
    unit.deliver(KvDelivered(req, "prefill-0", 1.0, payload, ready_s, sent_s=ready_s))


def _drive(unit: DecodeUnit, loop: VirtualTimeLoop, until_s: float,
           events: list[tuple[float, Callable[..., None], tuple[Any, ...]]]) -> None:
    """Run ``unit`` on ``loop`` up to emu ``until_s`` with ``events`` (emu s, callback, its
    arguments) scheduled; if the unit's loop died, its error is raised here."""

    async def drive() -> None:
        task = loop.create_task(unit.run())
        for at_s, callback, args in events:
            loop.call_at(at_s, callback, *args)
        await unit.clock.sleep_until(until_s)
        if task.done():
            task.result()
        task.cancel()

    loop.run_until_complete(drive())
    loop.close()


def _run(late_by_s: float, output_tokens: int, batch: int = 256,
         feed: bool = False, paged: PagedKv | None = None) -> tuple[DecodeUnit, _Sink]:
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    model = get_model("llama-3.1-70b")
    unit = DecodeUnit("decode-0", clock, model, FLAT_CS3, 4, FcfsAdmission(batch),
                      LocalStore(), 1e11 if paged is None else paged.capacity_bytes, paged=paged)
    collector, router = _Sink(), _Sink()
    unit.connect({"collector": collector, "router": router, "gateway": _Sink()})
    if feed:  # disagg serve: token times go to the gateway
        unit.token_feed = TokenFeed("gateway")

    _drive(unit, loop, 2.0, [
        (0.0, _deliver, (unit, 0, 0.0, 1001)),  # keeps the unit busy for ~0.48 s
        (0.0, _deliver, (unit, 2, 0.0, 251)),  # completes at ~0.119 s: the unit commits there
        # request 1's KV was modeled to arrive at 0.1 s but reaches the unit late
        (0.1 + late_by_s, _deliver, (unit, 1, 0.1, output_tokens)),
    ])
    return unit, collector


def _record(collector: _Sink, rid: int) -> DecodeRecord:
    """The decode unit's record of request ``rid``, as it went to the collector with its end."""
    [end] = [m for m in collector.got if m.request_id == rid]
    [rec] = [r for r in end.records if isinstance(r, DecodeRecord)]
    return rec


def test_late_kv_joins_at_its_modeled_boundary() -> None:
    (on_time, c_on), (late, c_late) = _run(0.0, 100), _run(0.05, 100)  # 50 ms of lag
    for collector in (c_on, c_late):
        rec = _record(collector, 1)
        assert rec.decode_start_s == pytest.approx(0.1, abs=STEP)
        assert rec.last_token_s == pytest.approx(rec.decode_start_s + 99 * STEP, rel=1e-6)
    assert late.gate.late_joins == 1 and on_time.gate.late_joins == 0
    assert _record(c_late, 1).last_token_s == pytest.approx(_record(c_on, 1).last_token_s)


def test_late_kv_that_would_already_be_done_completes_at_once() -> None:
    unit, collector = _run(0.2, 20)  # 19 decode steps take ~9 ms: done long before it arrives
    ends = {m.request_id: m for m in collector.got}
    assert ends[1].status == "completed"
    rec = _record(collector, 1)
    assert ends[1].sent_s == pytest.approx(rec.decode_start_s + 19 * STEP, rel=1e-6)
    assert 1 not in unit.running and unit.gate.late_joins == 1


def test_late_kv_that_completes_within_its_join_feeds_the_gateway_first() -> None:
    # disagg serve: the late join used to end the request (dropping its draft) and then tell
    # the gateway it joined, reading the dropped draft (KeyError)
    unit, collector = _run(0.2, 20, feed=True)
    ends = {m.request_id: m for m in collector.got}
    assert ends[1].status == "completed"
    assert _record(collector, 1).decode_start_s == pytest.approx(0.1, abs=STEP)
    assert unit.gate.late_joins == 1


def test_late_kv_joins_only_where_the_batch_had_room() -> None:
    # two requests per batch: requests 0 and 2 fill it from 0; request 2 ends after its 250
    # decode steps, at 250 x STEP = 0.119 s. Request 1 (modeled at 0.1 s, 0.1 s late) had no
    # room at 0.1 s: it joins at request 2's last boundary, not at 0.1 s
    unit, collector = _run(0.1, 20, batch=2)
    assert _record(collector, 2).last_token_s == pytest.approx(250 * STEP, rel=1e-9)
    assert _record(collector, 1).decode_start_s == pytest.approx(250 * STEP, rel=1e-9)
    assert _record(collector, 1).last_token_s == pytest.approx(269 * STEP, rel=1e-6)
    assert unit.gate.late_joins == 1


def _run_paged(capacity_blocks: int) -> tuple[DecodeUnit, _Sink]:
    """Paged KV (16-token blocks): request 0 (1,000-token prompt, 1,001 tokens) runs alone from
    0; request 1 (the same) is modeled to arrive at 0.1 s but reaches the unit at 0.3 s, after a
    speed change of factor 1 at 0.29 s made the unit commit there."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    model = get_model("llama-3.1-70b")
    paged = PagedKv(16, float(kv_bytes(16, model)), capacity_blocks, 0)
    unit = DecodeUnit("decode-0", clock, model, FLAT_CS3, 4, FcfsAdmission(), LocalStore(),
                      paged.capacity_bytes, paged=paged)
    collector = _Sink()
    unit.connect({"collector": collector, "router": _Sink()})

    _drive(unit, loop, 3.0, [(0.0, _deliver, (unit, 0, 0.0, 1001)),
                             (0.29, unit.deliver, (SpeedChanged(1.0, 0.29),)),
                             (0.3, _deliver, (unit, 1, 0.1, 1001))])
    return unit, collector


def test_late_kv_is_credited_only_tokens_whose_kv_fits_the_unit_now() -> None:
    # At 0.1 s request 0 held 1,210 tokens (76 blocks): request 1's 63 blocks fitted in 170.
    # At 0.29 s request 0 holds 1,609 (101 blocks); request 1 with the ~400 tokens it would be
    # credited since 0.1 s would hold 88: over capacity (the ray engine's decode-0 raised
    # CapacityExceeded so on a loaded machine). It joins at the first boundary whose credited
    # tokens fit: at most 69 blocks (1,104 tokens, 103 credited), so from 0.29 s - 103 STEP on
    unit, collector = _run_paged(170)
    ends = {m.request_id: m.status for m in collector.got}
    assert ends == {0: "completed", 1: "completed"}
    assert unit.kv_used_bytes == 0.0 and unit.gate.late_joins == 1
    start = _record(collector, 1).decode_start_s
    assert 0.29 - 104 * STEP <= start < 0.29


# one stream per step at the latency floor: a step of a batch of b takes b x STEP
SHARED_CS3 = FLAT_CS3.model_copy(update={"concurrency_exponent": 1.0,
                                         "concurrency_free_streams": 1.0})


def _run_shared(late_by_s: float) -> DecodeRecord:
    """Request 0 (1,001 tokens) runs alone from 0; request 1 (101 tokens) is modeled to arrive
    at 0.1 s; a speed change of factor 1 at 0.12 s makes the unit commit there (nothing else
    changes). Request 1's decode record."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    model = get_model("llama-3.1-70b")
    unit = DecodeUnit("decode-0", clock, model, SHARED_CS3, 4, FcfsAdmission(), LocalStore(), 1e11)
    collector = _Sink()
    unit.connect({"collector": collector, "router": _Sink()})

    _drive(unit, loop, 2.0, [(0.0, _deliver, (unit, 0, 0.0, 1001)),
                             (0.12, unit.deliver, (SpeedChanged(1.0, 0.12),)),
                             (0.1 + late_by_s, _deliver, (unit, 1, 0.1, 101))])
    return _record(collector, 1)


def test_late_kv_is_credited_at_the_pace_of_the_batch_it_joins() -> None:
    # on time: request 1 joins at the first boundary at or after 0.1 s and its 100 decode
    # tokens take 2 x STEP each (a batch of two); 50 ms late, the unit already ran alone past
    # 0.12 s: it is credited its tokens since at 2 x STEP too, not at the STEP the unit ran
    on_time, late = _run_shared(0.0), _run_shared(0.05)
    join_s = np.ceil(0.1 / STEP - 1e-6) * STEP
    assert on_time.decode_start_s == pytest.approx(join_s, abs=1e-9)
    assert on_time.last_token_s == pytest.approx(join_s + 100 * 2 * STEP, abs=1e-6)
    assert late.decode_start_s == pytest.approx(join_s, abs=1e-9)
    # the credited tokens end on its own grid; it then steps on the unit's: at most one STEP off
    assert late.last_token_s == pytest.approx(on_time.last_token_s, abs=STEP * 1.01)

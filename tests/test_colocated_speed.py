"""A straggler fault on a colocated unit (issue 21): iterations from the first boundary at or
after the change's time take ``factor`` x longer, as on a decode unit. Before, the colocated unit
had no handler for ``SpeedChanged`` and the run died."""

from __future__ import annotations

import pytest
from conftest import make_request

from disagg.actors.components.colocated import ColocatedUnit
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.hardware.catalog import get_hardware, get_model
from disagg.cluster.hardware.perf import decode_step_time
from disagg.cluster.messages import PrefillAssigned, RequestEnded, SpeedChanged
from disagg.cluster.records import DecodeRecord, PrefillRecord

H100 = get_hardware("h100")
MODEL = get_model("llama-3.1-8b")


def _steps() -> list[float]:
    """The perf model's 100 decode steps of one request whose context grows from 101 tokens."""
    return [decode_step_time(1, 101 + j, MODEL, H100, 1) for j in range(100)]


class _Sink:
    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append(msg)


def _run(change: SpeedChanged | None) -> tuple[PrefillRecord, DecodeRecord]:
    """One request of 101 tokens; the unit's prefill and decode records."""
    loop = VirtualTimeLoop()
    clock = VirtualClock(loop)
    unit = ColocatedUnit("colocated-0", clock, MODEL, H100, 1, 1e11,
                         8192, 8)
    collector = _Sink()
    unit.connect({"collector": collector, "router": _Sink()})

    async def drive() -> None:
        task = loop.create_task(unit.run())
        req = make_request(prompt_tokens=100, output_tokens=101, tpot_slo_s=1.0)
        loop.call_at(0.0, unit.deliver, PrefillAssigned(req, 0.0))
        if change is not None:
            loop.call_at(change.sent_s, unit.deliver, change)
        await clock.sleep_until(10.0)
        if task.done():
            task.result()
        task.cancel()

    loop.run_until_complete(drive())
    loop.close()
    [end] = [m for m in collector.got if isinstance(m, RequestEnded)]
    [pre] = [r for r in end.records if isinstance(r, PrefillRecord)]
    [dec] = [r for r in end.records if isinstance(r, DecodeRecord)]
    return pre, dec


def test_a_straggler_slows_colocated_iterations_from_the_next_boundary() -> None:
    pre, dec = _run(None)
    first, steps = pre.first_token_s, _steps()
    assert dec.last_token_s == pytest.approx(first + sum(steps), rel=1e-9)
    # mid-iteration 41: iterations 0-40 at speed, 41-99 (from boundary 41 on) twice as long
    change_s = first + sum(steps[:40]) + steps[40] / 2
    _, slow = _run(SpeedChanged(2.0, change_s))
    want = first + sum(steps[:41]) + 2 * sum(steps[41:])
    assert slow.last_token_s == pytest.approx(want, rel=1e-9)

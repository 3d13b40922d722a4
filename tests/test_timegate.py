"""The time gate's rules, by hand: release times per edge, causality on the virtual engine, and
the capacity rule for late joins."""

from __future__ import annotations

import pytest
from conftest import make_request

from disagg.cluster.messages import KvReady, LoadReport, RequestArrived
from disagg.cluster.timegate import HOLD_MULTIPLIERS, CausalityError, TimeGate, sender_kind

H = 0.05


def test_timer_driven_units_act_at_their_largest_incoming_hold() -> None:
    assert TimeGate.for_ray("prefill", H, 1.0).release_s(1.0) == pytest.approx(1.0 + 2 * H)
    assert TimeGate.for_ray("fabric", H, 1.0).release_s(1.0) == pytest.approx(1.0 + 4 * H)
    assert TimeGate.for_ray("decode", H, 2.0).release_s(1.0) == pytest.approx(1.0 + 5 * H / 2)
    assert TimeGate.for_ray("collector", H, 1.0).release_s(1.0) == 1.0  # holds nothing
    assert TimeGate.for_virtual("decode").release_s(1.0) == 1.0


def test_each_forward_edge_has_one_hold_of_slack_over_its_sender() -> None:
    # a sender acts at its own largest incoming hold; its receiver holds that edge one H more
    own = {k: max((m[k] for m in HOLD_MULTIPLIERS.values() if k in m), default=0)
           for k in ("router", "prefill", "fabric", "decode")}
    assert HOLD_MULTIPLIERS["router"]["prefill"] == HOLD_MULTIPLIERS["loadgen"]["router"] + 1
    assert HOLD_MULTIPLIERS["router"]["fabric"] == HOLD_MULTIPLIERS["prefill"]["router"] + 1
    assert HOLD_MULTIPLIERS["fabric"]["decode"] == own["fabric"] + 1
    # KvReady and prefill load reports leave at +2 H: the router holds them one H more
    assert HOLD_MULTIPLIERS["prefill"]["router"] == own["prefill"] + 1


def test_router_holds_kv_hand_offs_longer_than_arrivals() -> None:
    gate = TimeGate.for_ray("router", H, 1.0)
    req = make_request()
    assert sender_kind(RequestArrived(req, 0.0)) == "loadgen"
    assert sender_kind(KvReady(req, "prefill-0", 1.0, None, 0.0)) == "prefill"
    report = LoadReport("decode-0", "decode", 0, 0, 0, 0.0, 1.0, 0.0, sent_s=0.0)
    assert sender_kind(report) == "decode"
    assert gate.edge_hold_s("loadgen") == pytest.approx(H)
    assert gate.edge_hold_s("prefill") == pytest.approx(3 * H)
    assert gate.edge_hold_s(None) == pytest.approx(H)  # engine messages: the shortest edge


def test_a_late_input_on_the_virtual_engine_breaks_causality() -> None:
    assert not TimeGate.for_virtual("decode").is_late(2.0, 2.0)
    with pytest.raises(CausalityError, match="decode"):
        TimeGate.for_virtual("decode").is_late(1.0, 2.0)
    ray_gate = TimeGate.for_ray("decode", H, 1.0)
    assert ray_gate.is_late(1.0, 2.0) and ray_gate.late_inputs == 1


def test_a_late_join_goes_to_the_first_past_boundary_with_room() -> None:
    gate = TimeGate.for_ray("decode", H, 1.0)
    bounds = [0.0, 0.1, 0.2, 0.3, 0.4]
    room = [True, False, False, True, True]  # the batch was full at 0.1 and 0.2
    assert gate.join_index(0.05, bounds, room.__getitem__) == 3
    assert gate.join_index(0.0, bounds, room.__getitem__) == 0
    assert gate.join_index(0.05, bounds, lambda i: False) is None  # at the current boundary
    assert gate.late_joins == 2
    assert TimeGate.for_virtual("decode").join_index(0.05, bounds, room.__getitem__) is None


def test_only_a_gate_with_a_hold_that_holds_messages_may_hold_one_back() -> None:
    # Component.deliver asks admit_message only when ``holding``: it must be False exactly where
    # admit_message admits everything (no hold, or messages not held)
    clock = _NoClock()
    virtual, ray_unheld, ray_held = (TimeGate.for_virtual("router"),
                                     TimeGate.for_ray("router", H, 1.0),
                                     TimeGate.for_ray("router", H, 1.0))
    virtual.hold_messages(clock, lambda m: None)
    ray_held.hold_messages(clock, lambda m: None)
    assert (virtual.holding, ray_unheld.holding, ray_held.holding) == (False, False, True)
    message = RequestArrived(make_request(), 0.0)
    assert virtual.admit_message(message) and ray_unheld.admit_message(message)


class _NoClock:
    """A clock for gates whose held messages are never released in the test."""

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s

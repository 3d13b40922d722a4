"""The KV of an attempt the router has redone since is not placed: on the ray engine a lost
prefill unit's actor dies asynchronously, so its KvReady can reach the router after the loss
notice (and, placed, ended the request ``kv_missing`` while its redo was under way)."""

from __future__ import annotations

import dataclasses

from conftest import make_experiment, make_request

from disagg.actors.components.router import Router
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.cluster.messages import (
    KvReady,
    PrefillAssigned,
    RequestArrived,
    RequestRedone,
    TransferRequested,
    UnitDown,
)
from disagg.policies import ROUTERS
from disagg.policies.context import initial_views, policy_context


class _Sink:
    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append(msg)


def test_a_kv_of_an_attempt_redone_since_is_not_placed() -> None:
    exp = make_experiment(prefill__units=2, decode__units=1)
    ctx = policy_context(exp, "router")
    router = Router("router", VirtualClock(VirtualTimeLoop()),
                    ROUTERS.create("round_robin", {}, ctx), ctx, initial_views(exp))
    sinks = {n: _Sink() for n in ("prefill-0", "prefill-1", "decode-0", "fabric", "collector")}
    router.connect(sinks)
    first = make_request(request_id=7)

    router.deliver(RequestArrived(first, 0.0))
    [(lost, assigned)] = [(n, m) for n in ("prefill-0", "prefill-1") for m in sinks[n].got]
    assert isinstance(assigned, PrefillAssigned) and assigned.request.attempt == 0
    router.deliver(UnitDown(lost, frozenset(), 0.5))  # the loss notice: request 7 is redone
    [redo] = [m for m in sinks["collector"].got if isinstance(m, RequestRedone)]
    other = "prefill-1" if lost == "prefill-0" else "prefill-0"
    [again] = sinks[other].got
    assert redo.request_id == 7 and again.request.attempt == 1

    router.deliver(KvReady(first, lost, 1e9, None, 0.6))  # the lost unit's KV, come late
    assert not sinks["fabric"].got  # not placed: attempt 1 is under way
    router.deliver(KvReady(dataclasses.replace(first, attempt=1), other, 1e9, None, 0.8))
    [transfer] = sinks["fabric"].got
    assert isinstance(transfer, TransferRequested) and transfer.request.attempt == 1

"""The ray engine's transport without Ray: one actor call per destination actor per loop tick,
order kept, newer load reports superseding older ones, records to the collector held until a
flush, messages within an actor delivered as messages, and the counts."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import pytest
from conftest import make_experiment, make_request

from disagg.actors.engines.transport import (
    PREFETCH_WAIT_WALL_S,
    Transport,
    merge_stats,
    prefetch_wait_wall_s,
)
from disagg.cluster.messages import KvPrefetch, LoadReport, RequestArrived, RequestEnded


class FakeActor:
    """Stands in for an actor handle: records every ``deliver_batch`` call."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, Any]]] = []
        self.deliver_batch = self

    def remote(self, items: list[tuple[str, Any]]) -> Any:
        self.calls.append(list(items))
        done: Future[None] = Future()
        done.set_result(None)
        return FakeRef(done)


class FakeRef:
    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def future(self) -> Future[None]:
        return self._future


def report(unit: str, queued: int) -> LoadReport:
    return LoadReport(unit, "prefill", queued, 0, 0, 0.0, 1.0, 0.0, sent_s=float(queued))


def make(coalesce_records: bool = True) -> tuple[Transport, dict[str, FakeActor], list[Any]]:
    actors = {"router": FakeActor(), "collector": FakeActor(), "fabric": FakeActor()}
    handles = {"router": actors["router"], "collector": actors["collector"],
               "fabric": actors["fabric"], "decode-0": actors["fabric"]}
    local: list[Any] = []
    transport = Transport(handles, {"router": "r", "collector": "c", "fabric": "f",
                                    "decode-0": "f", "prefill-0": "p"},
                          lambda name, m: local.append((name, m)),
                          frozenset({"prefill-0"}), coalesce_records)
    return transport, actors, local


def test_one_call_per_destination_actor_per_tick_in_order() -> None:
    async def scenario() -> tuple[Transport, dict[str, FakeActor]]:
        transport, actors, _ = make()
        arrived = [RequestArrived(make_request(request_id=i), 0.0) for i in range(3)]
        for msg in arrived:
            transport.peer("router").send(msg)
        transport.peer("fabric").send(arrived[0])
        transport.peer("decode-0").send(arrived[1])  # another component of the fabric's actor
        assert actors["router"].calls == []  # nothing leaves before the tick ends
        await asyncio.sleep(0)
        transport.peer("router").send(arrived[2])  # a later tick: a second call
        await asyncio.sleep(0)
        return transport, actors

    transport, actors = asyncio.run(scenario())
    ids = [[m.request.request_id for _, m in call] for call in actors["router"].calls]
    assert ids == [[0, 1, 2], [2]]
    assert [[d for d, _ in call] for call in actors["fabric"].calls] == [["fabric", "decode-0"]]
    assert transport.stats.actor_calls == 3
    assert transport.stats.sent["RequestArrived"] == 6


def test_newer_load_report_supersedes_older_of_same_unit() -> None:
    async def scenario() -> tuple[Transport, dict[str, FakeActor]]:
        transport, actors, _ = make()
        peer = transport.peer("router")
        for msg in (report("prefill-0", 1), report("prefill-1", 5), report("prefill-0", 2)):
            peer.send(msg)
        await asyncio.sleep(0)
        return transport, actors

    transport, actors = asyncio.run(scenario())
    [call] = actors["router"].calls
    assert [(m.unit, m.queued_requests) for _, m in call] == [("prefill-1", 5), ("prefill-0", 2)]
    assert transport.stats.superseded["LoadReport"] == 1
    assert transport.stats.carried["LoadReport"] == 2


def test_records_held_until_flush_and_prefetch_waits_for_its_delivery() -> None:
    async def scenario() -> tuple[dict[str, FakeActor], list[int]]:
        transport, actors, _ = make()
        transport.peer("collector").send(RequestEnded(1, "completed", "", 0.1))
        transport.peer("decode-0").send(KvPrefetch(1, None, 0.1))
        await asyncio.sleep(0)
        seen = [len(actors["collector"].calls), len(actors["fabric"].calls)]
        transport.peer("collector").send(RequestEnded(2, "completed", "", 0.2))
        await transport.flush()
        return actors, seen

    actors, seen = asyncio.run(scenario())
    assert seen == [0, 0]
    assert [[m.request_id for _, m in c] for c in actors["collector"].calls] == [[1, 2]]
    assert len(actors["fabric"].calls) == 1


def test_closed_loop_records_go_at_once() -> None:
    async def scenario() -> dict[str, FakeActor]:
        transport, actors, _ = make(coalesce_records=False)
        transport.peer("collector").send(RequestEnded(1, "completed", "", 0.1))
        await asyncio.sleep(0)
        return actors

    assert len(asyncio.run(scenario())["collector"].calls) == 1


def test_local_component_gets_a_message_not_an_inline_call() -> None:
    async def scenario() -> tuple[list[Any], int, Transport]:
        transport, _, local = make()
        transport.peer("prefill-0").send(report("x", 1))
        before = len(local)
        await asyncio.sleep(0)
        return local, before, transport

    local, before, transport = asyncio.run(scenario())
    assert before == 0 and [n for n, _ in local] == ["prefill-0"]
    assert transport.stats.actor_calls == 0 and transport.stats.local["LoadReport"] == 1


def test_merge_stats_sums_actors_and_divides_by_requests() -> None:
    a = {"actor_calls": 3, "sent": {"KvReady": 2, "LoadReport": 4}, "carried": {"KvReady": 2},
         "calls_with": {"KvReady": 1}}
    b = {"actor_calls": 5, "sent": {"LoadReport": 2}, "carried": {"LoadReport": 1},
         "calls_with": {"LoadReport": 1}, "superseded": {"LoadReport": 1}}
    out = merge_stats([a, b], requests=2)
    assert out["actor_calls"] == 8 and out["per_request"] == 4.0
    assert out["messages_sent"] == 8 and out["messages_per_request"] == 4.0
    assert list(out["by_type"]) == ["LoadReport", "KvReady"]
    assert out["by_type"]["LoadReport"]["superseded"] == 1


def test_a_prefetch_waits_for_its_delivery_up_to_two_holds() -> None:
    exp = make_experiment(experiment__hold_wall_s=0.05)
    assert prefetch_wait_wall_s(exp, serving=False) == pytest.approx(0.10)  # PREFETCH_WAIT_HOLDS x hold_wall_s
    assert prefetch_wait_wall_s(exp, serving=True) == PREFETCH_WAIT_WALL_S  # serve holds nothing
    assert prefetch_wait_wall_s(make_experiment(experiment__hold_wall_s=0.0),
                                serving=False) == PREFETCH_WAIT_WALL_S

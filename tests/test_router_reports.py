"""Load reports posted to the router on the virtual engine (actors/components/router_reports.py):
applied when the router next decides, each unit's block changes in order, and as a message when
the router waits for a decode unit."""

from __future__ import annotations

from collections.abc import Set

from conftest import make_experiment, make_request

from disagg.actors.components.router import Router
from disagg.actors.engines.virtual import VirtualClock, VirtualTimeLoop
from disagg.actors.engines.virtual_peers import PostingPeer
from disagg.cluster.block_changes import BlockChanges
from disagg.cluster.messages import KvReady, LoadReport, PrefillAssigned, RequestArrived
from disagg.policies import ROUTERS
from disagg.policies.context import initial_views, policy_context


class _Sink:
    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append(msg)


class _Cache:
    """A unit's cache as a BlockChanges sees it: its ids now; counts full reads of them."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids
        self.reads = 0

    def held_ids(self) -> set[int]:
        self.reads += 1
        return self.ids

    def unreported(self) -> list[tuple[list[int], list[int]]]:
        return []


def _router(policy: str = "round_robin", **overrides) -> tuple[Router, dict[str, _Sink]]:
    exp = make_experiment(prefill__units=1, decode__units=1, **overrides)
    ctx = policy_context(exp, "router")
    router = Router("router", VirtualClock(VirtualTimeLoop()), ROUTERS.create(policy, {}, ctx),
                    ctx, initial_views(exp))
    sinks = {n: _Sink() for n in ("prefill-0", "decode-0", "fabric", "collector")}
    router.connect(sinks)
    return router, sinks


def _report(unit: str, sent_s: float, queued: int, blocks: Set[int] = frozenset()) -> LoadReport:
    kind = "prefill" if unit.startswith("prefill") else "decode"
    return LoadReport(unit, kind, queued, 0, 0, 0.0, 1e12, sent_s, sent_s,
                      cached_blocks=blocks)


def test_a_decision_sees_the_newest_report_posted_before_it() -> None:
    router, sinks = _router()
    assert router.post_report(_report("prefill-0", 0.1, 3))
    assert router.post_report(_report("prefill-0", 0.3, 5))  # supersedes the first
    assert router.views["prefill-0"].reported_s == 0.0  # not applied before a decision

    router.deliver(RequestArrived(make_request(request_id=1, arrival_s=0.5), 0.5))
    [assigned] = sinks["prefill-0"].got
    assert isinstance(assigned, PrefillAssigned)
    [routing] = [r for r in assigned.records if hasattr(r, "prefill_view_age_s")]
    assert abs(routing.prefill_view_age_s - 0.2) < 1e-12  # the view of the report sent at 0.3
    assert router.views["prefill-0"].queued_requests == 5 + 1  # its load, and this request


def test_superseded_reports_still_change_the_held_blocks_in_order() -> None:
    # the unit held {1, 2} at its first report, then +3 -1, then +4 -2: {3, 4} now
    cache = _Cache({3, 4})
    first = BlockChanges(cache, [([1, 2], [])])
    second = BlockChanges(cache, [([3], [1])])
    third = BlockChanges(cache, [([4], [2])])
    first.later, second.later = second, third
    router, _ = _router()
    router.deliver(_report("prefill-0", 0.1, 0, first))  # the first: a full copy of the ids
    assert set(router.views["prefill-0"].cached_blocks) == {1, 2}
    reads = cache.reads

    router.post_report(_report("prefill-0", 0.2, 0, second))
    router.post_report(_report("prefill-0", 0.3, 0, third))
    router.deliver(RequestArrived(make_request(request_id=1, arrival_s=0.5), 0.5))
    assert set(router.views["prefill-0"].cached_blocks) == {3, 4}
    assert cache.reads == reads  # applied change by change, never copied in full again


def test_a_decode_report_comes_as_a_message_while_a_kv_waits_for_a_decode_unit() -> None:
    router, sinks = _router()
    router.deliver(_report("decode-0", 0.1, 0))
    router.waiting.append(KvReady(make_request(request_id=1), "prefill-0", 1.0, None, 0.1))
    assert not router.post_report(_report("decode-0", 0.2, 0))  # retries the KVs on arrival
    assert router.post_report(_report("prefill-0", 0.2, 0))  # a prefill unit's: posted


def test_the_virtual_peer_posts_only_reports_that_arrive_at_once() -> None:
    loop = VirtualTimeLoop()
    router, _ = _router()
    PostingPeer(loop, router, 0.0).send(_report("prefill-0", 0.0, 1))
    assert len(router._posted) == 1
    PostingPeer(loop, router, 0.01).send(_report("prefill-0", 0.0, 2))  # a modeled delay
    assert len(router._posted) == 1  # a message, delivered at its arrival
    loop.close()

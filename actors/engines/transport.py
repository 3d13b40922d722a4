"""The ray engine's transport: component messages, coalesced into as few actor calls as the timing
rules allow, and counted.

A component's ``Peer.send`` puts the message into its actor's :class:`Outbox` for the destination
*actor* (tagged with the destination component's name, since one actor may host several
components). An outbox goes out as one actor call (``deliver_batch``) at the end of the current
event-loop tick (``loop.call_soon``), so every message one actor sends to one other actor while
handling one event travels together, and the receiver handles them in the order they were sent.
Nothing is delayed past the tick, with two exceptions that no modeled time depends on:

* **KV prefetches** (``KvPrefetch``, fabric -> decode: start copying the real bytes) wait up to
  :func:`prefetch_wait_wall_s` (two ``hold_wall_s``, at least :data:`PREFETCH_WAIT_WALL_S`), so
  they travel with the ``KvDelivered`` that follows unless the transfer is longer; the decode unit
  still handles the prefetch first and passes the KV's boundary a hold after the delivery left
  the fabric (``cluster/timegate.py``), time enough to copy the payload (1-13 ms measured here).
  This wait is coalescing, not the conservative hold. The modeled transfer is untouched;
  only the real copy may start that much later (measured: ``transfers.parquet`` real end).
* **records to the collector** (``RequestEnded``, first-token and join records, arrivals) of an
  open-loop, non-serving run wait up to :data:`RECORDS_WAIT_WALL_S` wall seconds and go out
  together. In a closed-loop run the collector forwards each end to the load generator (the next
  turn of a user), and a served run streams tokens from them, so there they go out at once. The
  driver calls :meth:`Transport.flush` on every actor (awaiting the calls) before the final drain,
  so that drain carries everything.

A newer ``LoadReport`` of a unit supersedes an older one still in the same outbox (the router
keeps only the newest view). Load reports are not held: the router places waiting requests on a
decode unit's report, so holding them would delay modeled decisions (measured: holding them one
report interval saved 2 % of the calls on the quickstart).

A message to a component hosted in the same actor never crosses an actor: it is handed to that
component's ``deliver`` with ``loop.call_soon`` (a message, never an inline call).

:class:`TransportStats` counts what crossed actors: actor calls, and messages sent / carried /
superseded by message type — the ``messages`` entry of the run's results.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from disagg.cluster.config import Experiment
from disagg.cluster.messages import KvPrefetch, LoadReport

RECORDS_WAIT_WALL_S = 0.2  # wall s a record bound for the collector may wait for company
PREFETCH_WAIT_WALL_S = 0.02  # wall s a KV prefetch may wait (for its delivery, on short transfers)
PREFETCH_WAIT_HOLDS = 2  # a KV prefetch may wait this many hold_wall_s for its delivery
COLLECTOR = "collector"
DeliverLocal = Callable[[str, Any], None]


def prefetch_wait_wall_s(exp: Experiment, serving: bool) -> float:
    """Wall s a ``KvPrefetch`` may wait for its ``KvDelivered``: :data:`PREFETCH_WAIT_HOLDS` x
    ``experiment.hold_wall_s`` (a served run holds nothing), at least
    :data:`PREFETCH_WAIT_WALL_S`."""
    hold_s = 0.0 if serving else exp.experiment.hold_wall_s
    return max(PREFETCH_WAIT_WALL_S, PREFETCH_WAIT_HOLDS * hold_s)


@dataclass
class TransportStats:
    """What one actor's transport moved: ``Peer.send`` calls by message type (``sent``), the
    messages that crossed to another actor (``carried``), those a newer load report replaced
    (``superseded``), those handed to a component in the same actor (``local``), and the actor
    calls that carried them (``actor_calls``; ``calls_with``: calls carrying at least one message
    of a type)."""

    actor_calls: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    carried: Counter[str] = field(default_factory=Counter)
    calls_with: Counter[str] = field(default_factory=Counter)
    superseded: Counter[str] = field(default_factory=Counter)
    local: Counter[str] = field(default_factory=Counter)

    def record_call(self, messages: list[tuple[str, Any]]) -> None:
        """One actor call carrying ``messages`` (destination name, message)."""
        self.actor_calls += 1
        kinds = [type(m).__name__ for _, m in messages]
        self.carried.update(kinds)
        self.calls_with.update(set(kinds))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the results."""
        return {"actor_calls": self.actor_calls, "sent": dict(self.sent),
                "carried": dict(self.carried), "calls_with": dict(self.calls_with),
                "superseded": dict(self.superseded), "local": dict(self.local)}


def merge_stats(parts: list[dict[str, Any]], requests: int) -> dict[str, Any]:
    """Every actor's :meth:`TransportStats.as_dict` summed: actor calls in total and per request,
    and per message type the messages sent, carried across actors, and actor calls carrying it."""
    calls = sum(p["actor_calls"] for p in parts)
    totals: dict[str, Counter[str]] = {k: Counter() for k in
                                       ("sent", "carried", "calls_with", "superseded", "local")}
    for p in parts:
        for key, counter in totals.items():
            counter.update(p.get(key, {}))
    by_type = {kind: {key: totals[key][kind] for key in totals}
               for kind in sorted(totals["sent"], key=lambda k: -totals["sent"][k])}
    per = (lambda n: n / requests) if requests else (lambda n: 0.0)
    return {"actor_calls": calls, "messages_sent": sum(totals["sent"].values()),
            "messages_carried": sum(totals["carried"].values()), "requests": requests,
            "per_request": per(calls), "messages_per_request": per(sum(totals["sent"].values())),
            "by_type": by_type}


def message_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """What crossed actors in this run (every actor's transport counts summed), per request."""
    collector = next((p for p in parts if p.get("name") == "collector"), {})
    return merge_stats([p["transport"] for p in parts if "transport" in p],
                       int(collector.get("submitted") or 0))


class Outbox:
    """Messages from this actor to one other actor, not yet sent."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.items: list[tuple[str, Any]] = []
        self.soon = False  # a flush at the end of this tick is scheduled
        self.timer: asyncio.TimerHandle | None = None

    def put(self, dest: str, message: Any, stats: TransportStats) -> None:
        if isinstance(message, LoadReport):
            kept = [(d, m) for d, m in self.items
                    if not (isinstance(m, LoadReport) and m.unit == message.unit)]
            if len(kept) < len(self.items):
                stats.superseded["LoadReport"] += len(self.items) - len(kept)
            self.items = kept
        self.items.append((dest, message))


class Transport:
    """One actor's sending side: an outbox per destination actor, flushed once per tick."""

    def __init__(self, handles: dict[str, Any], actor_of: dict[str, str],
                 local: DeliverLocal, local_names: frozenset[str], coalesce_records: bool,
                 prefetch_wait_s: float = PREFETCH_WAIT_WALL_S) -> None:
        self.handles = dict(handles)  # component name -> its actor's handle
        self.actor_of = dict(actor_of)  # component name -> its actor's key
        self.local = local
        self.local_names = local_names
        self.coalesce_records = coalesce_records  # records to the collector wait for company
        self.prefetch_wait_s = prefetch_wait_s
        self.stats = TransportStats()
        self.outboxes: dict[str, Outbox] = {}
        self.pending: set[asyncio.Future[Any]] = set()  # held-record calls not yet handled

    def peer(self, name: str) -> TransportPeer:
        return TransportPeer(self, name)

    def repoint(self, name: str, handle: Any) -> None:
        """Component ``name``'s actor was replaced: send to ``handle`` from now on."""
        self.handles[name] = handle
        box = self.outboxes.get(self.actor_of[name])
        if box is not None:
            box.handle = handle

    def coalesce_wait_s(self, dest: str, message: Any) -> float:
        """Wall seconds ``message`` may wait in its outbox for company (0: end of this tick)."""
        if isinstance(message, KvPrefetch):
            return self.prefetch_wait_s
        if dest == COLLECTOR and self.coalesce_records:
            return RECORDS_WAIT_WALL_S
        return 0.0

    def send(self, dest: str, message: Any) -> None:
        self.stats.sent[type(message).__name__] += 1
        loop = asyncio.get_running_loop()
        if dest in self.local_names:
            self.stats.local[type(message).__name__] += 1
            loop.call_soon(self.local, dest, message)
            return
        key = self.actor_of[dest]
        box = self.outboxes.get(key)
        if box is None:
            box = self.outboxes[key] = Outbox(self.handles[dest])
        box.put(dest, message, self.stats)
        wait_s = self.coalesce_wait_s(dest, message)
        if wait_s <= 0:
            if not box.soon:
                box.soon = True
                loop.call_soon(self._flush, box)
        elif box.timer is None or loop.time() + wait_s < box.timer.when():
            if box.timer is not None:
                box.timer.cancel()
            box.timer = loop.call_later(wait_s, self._flush, box)

    def _flush(self, box: Outbox) -> None:
        box.soon = False
        if box.timer is not None:
            box.timer.cancel()
            box.timer = None
        if not box.items:
            return
        items, box.items = box.items, []
        self.stats.record_call(items)
        ref = box.handle.deliver_batch.remote(items)
        if any(dest == COLLECTOR for dest, _ in items):  # the final drain waits for these
            future = asyncio.wrap_future(ref.future())
            self.pending.add(future)
            future.add_done_callback(self.pending.discard)

    async def flush(self) -> None:
        """Send every held message now and wait until every call sent so far was handled."""
        for box in self.outboxes.values():
            self._flush(box)
        await asyncio.gather(*self.pending, return_exceptions=True)  # a lost receiver: the
        # supervisor reports it


class TransportPeer:
    """``Peer`` for the ray engine: a message into the transport's outbox."""

    def __init__(self, transport: Transport, name: str) -> None:
        self.transport = transport
        self.name = name

    def send(self, message: Any) -> None:
        self.transport.send(self.name, message)

"""How a decode unit takes in a request's KV: the payload is got from the object store when the
transfer's prefetch or delivery arrives, and handed to the unit's ``_take`` (verification and
admission queueing).

``ObjectStore.get`` returns the payload itself when it is at hand (the virtual engine's
in-process store) or an awaitable of it (Ray's store): a payload at hand is taken in the message
handler, an awaitable one in a task, so the in-process case costs no task. Both engines run this
code; what decides is what ``get`` returned, not the engine.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.store import ObjectStore
from disagg.cluster.component import Clock, Component
from disagg.cluster.messages import KvDelivered, KvPrefetch, Request
from disagg.fabric.payload import KvMarker



def _awaitable(got: Any) -> bool:
    """Whether the store's answer is to be awaited; a marker (what the in-process store hands
    out) never is, and is told apart without ``inspect.isawaitable``'s checks."""
    return type(got) is not KvMarker and inspect.isawaitable(got)

class KvIntake(Component):
    """Base of a decode unit: gets each request's KV payload and hands it to :meth:`_take`;
    records the real arrival (``real_end_s``, emu s) and the records that came with the KV."""

    def __init__(self, name: str, clock: Clock, store: ObjectStore, control_delay_s: float) -> None:
        super().__init__(name, clock)
        self.store = store
        self.control_delay_s = control_delay_s
        self.records: dict[int, RequestDraft] = {}  # in flight here: decode facts so far
        self._carried: dict[int, tuple[Any, ...]] = {}  # in flight here: records that came with it
        self._fetches: set[asyncio.Task[None]] = set()
        self._prefetch: dict[int, Any] = {}  # request id -> payload, error, or task getting it

    def _take(self, msg: KvDelivered, payload: Any) -> None:
        """Use the request's payload (the unit verifies it and queues the request)."""
        raise NotImplementedError

    def _end(self, request: Request, status: str, reason: str, t: float) -> None:
        """End the request (the unit sends its records to the collector)."""
        raise NotImplementedError

    def _draft(self, rid: int) -> RequestDraft:
        """Request ``rid``'s draft here (a new one if it has none yet)."""
        draft = self.records.get(rid)
        if draft is None:
            draft = self.records[rid] = RequestDraft()
        return draft

    def _get(self, ref: Any) -> Any:
        """The store's answer for ``ref``: the payload, an awaitable of it, or the error."""
        try:
            return self.store.get(ref)
        except Exception as e:  # noqa: BLE001 - e.g. the object store lost the payload
            return e

    def _on_prefetch(self, msg: KvPrefetch) -> None:
        """Start getting the payload before its transfer ends (layer-wise transfer)."""
        got = self._get(msg.payload)
        if _awaitable(got):
            async def get() -> Any:
                payload = await got
                self._draft(msg.request_id).real_end_s = self.clock.now()
                return payload

            self._prefetch[msg.request_id] = asyncio.get_running_loop().create_task(get())
            return
        if not isinstance(got, Exception):
            self._draft(msg.request_id).real_end_s = self.clock.now()
        self._prefetch[msg.request_id] = got

    def _on_delivered(self, msg: KvDelivered) -> None:
        """The KV is here: take it now if the payload is at hand, else in a task."""
        rid = msg.request.request_id
        if rid in self._prefetch:
            got = self._prefetch.pop(rid)
        else:
            got = None if msg.payload is None else self._get(msg.payload)
        if _awaitable(got):
            task = asyncio.get_running_loop().create_task(self._fetch(msg, got))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)
            return
        self._arrived(msg)
        if isinstance(got, Exception):
            self._missing(msg, got)
            return
        self._take(msg, got)

    def _arrived(self, msg: KvDelivered) -> None:
        self._draft(msg.request.request_id)
        self._carried[msg.request.request_id] = msg.records

    def _missing(self, msg: KvDelivered, error: Exception) -> None:
        self._end(msg.request, "failed", f"kv_missing: {type(error).__name__}",
                  msg.sent_s + self.control_delay_s)

    async def _fetch(self, msg: KvDelivered, got: Any) -> None:
        self._arrived(msg)
        try:
            payload = await got
        except Exception as e:  # noqa: BLE001 - e.g. the object store lost the payload
            self._missing(msg, e)
            return
        self._take(msg, payload)

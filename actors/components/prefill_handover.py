"""How requests leave a prefill unit. Each request's ``PrefillRecord`` (batch start, first token at
the batch's end, modeled KV bytes, cached prompt tokens) goes on with its KV hand-over — a
``KvReady`` to the router with the payload put in the object store, at the batch's end, or at
its start under layer-wise streaming, when the first token's modeled time is already known; a
one-token request ends at its first token (to the collector). A request whose client went away
(``disagg serve``) ends ``cancelled``: at once if queued, else when its prefill ends or as it
comes. Mixed into :class:`~disagg.actors.components.prefill.PrefillUnit`.
"""

from __future__ import annotations

from typing import Any

from disagg.actors.components.store import ObjectStore
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.messages import KvReady, Request, RequestCancelled, RequestEnded
from disagg.cluster.records import PrefillRecord
from disagg.fabric.payload import make_marker, make_payload
from disagg.policies.base import QueuedPrefill


class KvHandover:
    """The prefill unit's records, KV hand-overs, one-token completions and cancellations."""

    name: str
    model: ModelSpec
    store: ObjectStore
    payload_scale: float
    seed: int
    control_delay_s: float
    queue: list[QueuedPrefill]
    queued_tokens: int
    cancels: dict[int, str]  # disagg serve: requests whose client went away
    _carried: dict[int, tuple[Any, ...]]  # queued or running: records so far
    _started: dict[int, PrefillRecord]  # running: this unit's record
    peers: dict[str, Any]

    def _on_cancelled(self, msg: RequestCancelled) -> None:
        """The request's client went away (``disagg serve``): a queued request leaves now; one
        in the running batch, or still to come, ends when its prefill ends, or as it comes."""
        at_s = msg.sent_s + self.control_delay_s
        for q in self.queue:
            if q.request.request_id == msg.request_id:
                self.queue.remove(q)  # no wake: the loop re-reads the queue when it next decides
                self.queued_tokens -= q.request.prompt_tokens
                self._cancel(q.request, msg.reason, max(at_s, q.queued_s), ())
                return
        self.cancels[msg.request_id] = msg.reason

    def _cancel(self, request: Request, reason: str, t: float, mine: tuple[Any, ...]) -> None:
        """End the request ``cancelled`` at ``t`` (emu s), with the records it came with and
        ``mine`` (this unit's, if any)."""
        rid = request.request_id
        self.cancels.pop(rid, None)
        carried = self._carried.pop(rid, (request,))
        self.peers["collector"].send(RequestEnded(rid, "cancelled", reason, t, (*carried, *mine)))

    def _record_start(self, requests: tuple[Request, ...], t: float, end: float,
                      cached: list[int] | None) -> None:
        """Each request's ``PrefillRecord`` (the one place its ``cached_tokens`` is recorded)."""
        model, started = self.model, self._started
        for i, r in enumerate(requests):
            modeled = float(kv_bytes(r.prompt_tokens, model)) if r.output_tokens > 1 else None
            started[r.request_id] = PrefillRecord(
                r.request_id, r.attempt, t, end, modeled, None if cached is None else cached[i])

    def _finish(self, request: Request, stream: bool = False) -> None:
        """Hand the KV to the router at the batch's end, or (layer-wise) at its start."""
        rid = request.request_id
        carried = self._carried.pop(rid, (request,))
        record = self._started.pop(rid)
        if rid in self.cancels:
            self._carried[rid] = carried
            self._cancel(request, self.cancels[rid], record.first_token_s, (record,))
            return
        if request.output_tokens <= 1:
            self.peers["collector"].send(
                RequestEnded(rid, "completed", "", record.first_token_s, (*carried, record)))
            return
        modeled = record.kv_bytes  # kv_bytes(prompt) as _record_start computed it
        assert modeled is not None  # (None only for a one-token output: ended above)
        start, end = record.prefill_start_s, record.first_token_s
        payload = make_payload(
            request.request_id, request.prompt_tokens, self.model.name,
            self.model.kv_bytes_per_element, self.model.layers, modeled, self.payload_scale,
            self.seed,
        ) if self.store.holds_bytes else make_marker(
            request.request_id, self.model.layers, modeled, self.payload_scale)
        ref = self.store.put(payload)  # None if an injected fault dropped it
        window = (start, end) if stream else None
        sent_s = start if stream else end
        self.peers["router"].send(KvReady(request, self.name, modeled, ref, sent_s, window,
                                          (*carried, record)))

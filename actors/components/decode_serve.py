"""What a decode unit does for ``disagg serve`` only: a request's client going away
(``RequestCancelled``: a pending request leaves at once, a running one at its next iteration
boundary with its KV freed, one still to come as its KV arrives) and the gateway told when a
request joins the running batch (its KV transfer and its admission). Mixed into
:class:`~disagg.actors.components.decode.DecodeUnit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from disagg.actors.components.decode_late import Running
from disagg.actors.components.draft import RequestDraft
from disagg.actors.components.token_feed import TokenFeed
from disagg.cluster.hardware.perf import kv_bytes
from disagg.cluster.hardware.specs import ModelSpec
from disagg.cluster.messages import Request, RequestCancelled
from disagg.cluster.records import TransferRecord
from disagg.cluster.wake import Wake
from disagg.policies.base import PendingDecode


class ServeHooks:
    """The decode unit's cancellations and gateway notices (``disagg serve``)."""

    name: str
    model: ModelSpec
    t: float
    control_delay_s: float
    pending: list[PendingDecode]
    running: dict[int, Running]
    _left: int
    _context: int
    records: dict[int, RequestDraft]
    _carried: dict[int, tuple[Any, ...]]
    cancels: dict[int, tuple[str, float]]  # request id -> reason, emu s
    token_feed: TokenFeed | None
    peers: dict[str, Any]
    wake: Wake
    # the unit's (annotations only, so no stub overrides them in the MRO)
    _release: Callable[[Running], None]
    _end: Callable[[Request, str, str, float], None]
    _poke: Callable[[], None]

    def _on_cancelled(self, msg: RequestCancelled) -> None:
        """The request's client went away (``disagg serve``): a pending request leaves now, a
        running one at its next iteration boundary (its KV freed); one still to come leaves as
        its KV arrives."""
        at_s = msg.sent_s + self.control_delay_s
        for i, p in enumerate(self.pending):
            if p.request.request_id == msg.request_id:
                del self.pending[i]
                self._end(p.request, "cancelled", msg.reason, max(at_s, p.ready_s))
                return
        self.cancels[msg.request_id] = (msg.reason, at_s)
        if msg.request_id in self.running:
            self._poke()

    def _drop_cancelled(self) -> None:
        """Running requests whose client went away leave at the committed boundary, their KV
        freed, ended ``cancelled``."""
        if not self.cancels:
            return
        for rid in [rid for rid in self.running if rid in self.cancels]:
            reason, _ = self.cancels.pop(rid)
            r = self.running.pop(rid)
            self._left -= r.left
            self._context -= r.context
            self._release(r)
            self.records[rid].last_token_s = self.t
            self._end(r.request, "cancelled", reason, self.t)

    def _feed_join(self, r: Request, rec: RequestDraft) -> None:
        """Tell the gateway the request joined: its transfer (the fabric's record that came with
        its KV) and its admission (this unit's)."""
        transfer = [t for t in self._carried.get(r.request_id, ()) if isinstance(t, TransferRecord)
                    and t.attempt == r.attempt]
        start_s, end_s = ((transfer[-1].transfer_start_s, transfer[-1].transfer_end_s)
                          if transfer else (self.t, self.t))
        self.token_feed.joined(  # type: ignore[union-attr]
            self.peers, self.name, r.request_id, float(kv_bytes(r.prompt_tokens, self.model)),
            start_s, end_s, self.t if rec.decode_start_s is None else rec.decode_start_s)

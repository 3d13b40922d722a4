"""What prefill and decode units tell the serving gateway, so that it can release each request's
tokens to its HTTP client at their emulated times (``disagg serve``, docs/serve.md).

A unit has no feed unless the engine gives it one (``TokenFeed("loadgen")`` when the gateway
stands in the load generator's place): ``disagg run`` sends none of these messages. Messages are
per batch or per run of decode iterations, never per token (docs/design.md, timing rule 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from disagg.cluster.component import Peer
from disagg.cluster.messages import DecodeJoined, FirstTokenPlanned, Request, TokenSchedule


class TokenFeed:
    """Sends first-token plans, decode joins and token schedules to the component ``sink``."""

    def __init__(self, sink: str) -> None:
        self.sink = sink

    def first_tokens(self, peers: dict[str, Peer], unit: str, requests: Sequence[Request],
                     start_s: float, end_s: float, cached: Sequence[int] | None = None) -> None:
        """A prefill batch from ``start_s`` to ``end_s`` (emu s): each request's first token
        (and its prompt tokens served from the prefix cache, ``cached``)."""
        for i, r in enumerate(requests):
            peers[self.sink].send(FirstTokenPlanned(r.request_id, unit, start_s, end_s, start_s,
                                                    0 if cached is None else cached[i]))

    def joined(self, peers: dict[str, Peer], unit: str, request_id: int, kv_bytes: float,
               transfer_start_s: float, transfer_end_s: float, decode_start_s: float) -> None:
        """A request joined ``unit``'s running batch at ``decode_start_s`` (emu s)."""
        peers[self.sink].send(DecodeJoined(request_id, unit, kv_bytes, transfer_start_s,
                                           transfer_end_s, decode_start_s, decode_start_s))

    def schedule(self, peers: dict[str, Peer], unit: str, request_ids: Sequence[int],
                 times_s: Sequence[float] | np.ndarray, start_s: float) -> None:
        """Iteration boundaries ``times_s`` (emu s) planned from ``start_s`` for ``request_ids``."""
        if request_ids and len(times_s):
            peers[self.sink].send(TokenSchedule(unit, tuple(request_ids),
                                                tuple(float(t) for t in times_s), start_s))

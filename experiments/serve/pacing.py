"""Release a request's tokens at their emulated times: ``wall = t0 + emu × dilation``.

:class:`TokenPacer` long-polls the gateway for the request's token plan (first token from the
prefill unit, decode tokens from the decode unit's iteration boundaries, re-planned when a join
cuts a run of iterations short) and yields, in order, how many tokens have come due, then the
request's end. Tokens that are already due when the plan arrives (the emulator ran late) are
released at once, together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

POLL_TIMEOUT_S = 5.0  # wall seconds one long-poll waits before asking again


class Backend(Protocol):
    """What the HTTP side needs from the served cluster (``actors/engines/serve_engine.py``)."""

    t0: float
    dilation: float

    def emu_now(self) -> float: ...

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
                     pin: Any = None) -> int: ...

    async def decode_leg(self, request_id: int, decode_unit: str, output_tokens: int
                         ) -> bool: ...

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> Any: ...

    async def cancel(self, request_id: int, reason: str) -> None: ...

    async def outcomes(self, cursor: int) -> list[Any]: ...

    async def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Due:
    """Tokens ``start`` .. ``start + count - 1`` of the output are due now."""

    start: int
    count: int
    late_s: float = 0.0  # wall s: token 0's lateness; others: how much later than the last
    modeled_s: float = 0.0  # emu s of its modeled interval (TTFT, or the gap before it)


@dataclass(frozen=True)
class Ended:
    """The request ended without all its tokens: ``status`` (rejected | failed) and reason."""

    status: str
    reason: str


class TokenPacer:
    """Paces one request's output tokens to its emulated token times."""

    def __init__(self, backend: Backend, request_id: int, output_tokens: int,
                 arrival_s: float | None = None) -> None:
        self.backend = backend
        self.arrival_s = arrival_s  # emu s (for the first token's modeled TTFT)
        self.request_id = request_id
        self.output_tokens = output_tokens
        self.released = 0
        self._version = -1
        self._first_s: float | None = None
        self._decode_s: list[float] = []
        self._status = ""
        self._reason = ""
        self.prefill_unit = ""  # the units serving it, once the plan names them
        self.decode_unit = ""
        self.cached_tokens = 0  # prompt tokens the prefill unit's prefix cache served
        self._late_s = 0.0  # how late the last token written went out (wall s)

    def _wall(self, emu_s: float) -> float:
        return self.backend.t0 + emu_s * self.backend.dilation

    def _next_emu_s(self) -> float | None:
        if self.released == 0:
            return self._first_s
        k = self.released - 1  # decode tokens released so far
        return self._decode_s[k] if k < len(self._decode_s) else None

    def _apply(self, update: Any) -> None:
        self._version = update.version
        self._first_s = update.first_token_s
        self._decode_s = self._decode_s[:update.from_index] + list(update.decode_times_s)
        self._status, self._reason = update.status, update.reason
        self.prefill_unit = update.prefill_unit or self.prefill_unit
        self.decode_unit = update.decode_unit or self.decode_unit
        self.cached_tokens = update.cached_tokens

    def _count_due(self, now_wall: float) -> int:
        n = 0
        while self.released + n < self.output_tokens:
            k = self.released + n
            t = self._first_s if k == 0 else (
                self._decode_s[k - 1] if k - 1 < len(self._decode_s) else None)
            if t is None or self._wall(t) > now_wall:
                break
            n += 1
        return n

    def _due(self, count: int, now_wall: float) -> Due:
        """``count`` tokens due now, with the first one's lateness and modeled interval."""
        k = self.released
        t = self._first_s if k == 0 else self._decode_s[k - 1]
        assert t is not None
        before = self.arrival_s if k == 0 else (self._first_s if k == 1 else
                                                 self._decode_s[k - 2])
        modeled = 0.0 if before is None else t - before
        late = max(0.0, now_wall - self._wall(t))
        stretch = late if k == 0 else max(0.0, late - self._late_s)  # the gap's stretch
        self._late_s = max(0.0, now_wall - self._wall(self._due_s(k + count - 1)))
        return Due(k, count, stretch, modeled)

    def _due_s(self, k: int) -> float:
        t = self._first_s if k == 0 else self._decode_s[k - 1]
        assert t is not None
        return t

    async def events(self) -> AsyncIterator[Due | Ended]:
        """``Due`` batches in order until every token is out, or one ``Ended``."""
        poll: asyncio.Task[Any] | None = None
        try:
            while self.released < self.output_tokens:
                now = time.time()
                due = self._count_due(now)
                if due:
                    yield self._due(due, now)
                    self.released += due
                    continue
                # ended with tokens unplanned: lost records, or (ray) the end came before the
                # decode unit's schedule; the end names the decode unit (``Gateway._on_ended``)
                if self._status == "completed":
                    yield Due(self.released, self.output_tokens - self.released)
                    self.released = self.output_tokens
                    break
                if self._status:
                    yield Ended(self._status, self._reason)
                    return
                if poll is None:
                    poll = asyncio.ensure_future(self.backend.wait(
                        self.request_id, self._version, max(0, self.released - 1),
                        POLL_TIMEOUT_S))
                nxt = self._next_emu_s()
                timeout = None if nxt is None else max(0.0, self._wall(nxt) - time.time())
                done, _ = await asyncio.wait({poll}, timeout=timeout)
                if poll in done:
                    self._apply(poll.result())
                    poll = None
        finally:
            if poll is not None:
                poll.cancel()

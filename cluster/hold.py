"""Messages a component holds back until their modeled time plus its conservative hold.

On the ray engine a message arrives 1-100 ms (wall) after its modeled time, so a message-driven
component (the router) would decide in arrival order, not modeled order. Its
:class:`~disagg.cluster.timegate.TimeGate` keeps every message carrying a modeled time ``sent_s``
here until its release time (``sent_s`` + the hold of the edge it came by) and then hands them out
in release-time order (ties: arrival order).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Any, Protocol


class LoopClock(Protocol):
    """What holding needs of a clock: loop seconds until an emu time."""

    def loop_delay_s(self, emu_s: float) -> float: ...


class HeldMessages:
    """A heap of held messages by (modeled s, arrival seq) and one loop timer for the earliest."""

    __slots__ = ("_clock", "_handle", "_heap", "_seq", "_timer")

    def __init__(self, clock: LoopClock, handle: Callable[[Any], None]) -> None:
        self._clock, self._handle = clock, handle
        self._heap: list[tuple[float, int, Any]] = []  # (release at, emu s; arrival seq; message)
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None

    def push(self, release_s: float, message: Any) -> None:
        """Hold ``message`` until emu time ``release_s`` (its modeled time plus the hold)."""
        heapq.heappush(self._heap, (release_s, self._seq, message))
        self._seq += 1
        if self._heap[0][2] is message:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            delay = self._clock.loop_delay_s(self._heap[0][0])
            self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._release)

    def _release(self) -> None:
        """Hand every message whose release time has come to the handler, earliest first."""
        self._timer = None
        while self._heap and self._clock.loop_delay_s(self._heap[0][0]) <= 0:
            self._handle(heapq.heappop(self._heap)[2])
        self._arm()

    def __len__(self) -> int:
        return len(self._heap)

"""A component's wake-up flag (:class:`Wake`): what a unit's task waits on between its modeled
events — a message arriving (``set``) or a deadline on the loop clock (``wait_for``), in loop
seconds. Used by the units, the fabric and the closed loop; ``Clock.wait_until`` in
``cluster/component.py`` hands out its waits.
"""

from __future__ import annotations

import asyncio


class Wake:
    """A component's wake-up flag: ``asyncio.Event`` for one waiting task, plus a wait with a
    deadline that costs one future and one timer (``asyncio.timeout`` around ``Event.wait``
    costs a dozen Python calls). Callbacks are scheduled where asyncio's would be: the waiter's
    wake-up on ``set`` or at the deadline, so both engines keep their order of events."""

    __slots__ = ("_set", "_waiter", "_expired")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None
        self._expired = False

    def is_set(self) -> bool:
        """True once set, until cleared."""
        return self._set

    def set(self) -> None:
        """Wake the waiting task (if any)."""
        if not self._set:
            self._set = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        """Unset the flag."""
        self._set = False

    async def wait(self) -> bool:
        """Wait until set; True."""
        if self._set:
            return True
        assert self._waiter is None, "a Wake has one waiting task"
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True

    async def wait_for(self, delay: float) -> bool:
        """Wait until set or ``delay`` (loop clock s) passed: True if set first, as
        ``asyncio.timeout(delay)`` around ``wait`` (the deadline wins once its timer has run)."""
        assert self._waiter is None, "a Wake has one waiting task"
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._expired = False
        now = loop.time()
        when = now + delay  # as asyncio.timeout(delay) computes and schedules it
        timer = loop.call_soon(self._expire) if when <= now else loop.call_at(when, self._expire)
        try:
            await waiter
        finally:
            if not self._expired:  # (an expired timer has run: nothing to cancel)
                timer.cancel()
            self._waiter = None
        return not self._expired

    def _expire(self) -> None:
        self._expired = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)

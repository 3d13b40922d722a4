"""A component's wake-up flag (:class:`Wake`): what a unit's task waits on between its modeled
events — a message arriving (``set``) or a deadline on the loop clock (``wait_for``), in loop
seconds — and :func:`at_once`, an answer that does not wait. Used by the units and the closed
loop; ``Clock.wait_until`` in ``cluster/component.py`` hands out its waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Wake:
    """A component's wake-up flag: ``asyncio.Event`` for one waiting task, plus a wait with a
    deadline. A wait is one future the task awaits directly, and for a deadline one timer
    (``asyncio.timeout`` around ``Event.wait`` costs a dozen Python calls; a coroutine around
    the future, a frame to create, enter and resume per wait, ~73k a run). The waiter's
    wake-up is scheduled where asyncio's would be: on ``set``, or when the deadline's timer
    runs, whichever comes first."""

    __slots__ = ("_set", "_timer", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.Handle | None = None  # the pending wait's deadline

    def is_set(self) -> bool:
        """True once set, until cleared."""
        return self._set

    def set(self) -> None:
        """Wake the waiting task (if any): its wait answers True and its deadline is dropped."""
        if not self._set:
            self._set = True
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(True)
                timer = self._timer
                if timer is not None:
                    self._timer = None
                    timer.cancel()

    def clear(self) -> None:
        """Unset the flag."""
        self._set = False

    def wait(self) -> Awaitable[bool]:
        """An awaitable that answers True once set (await it at once: one waiting task)."""
        if self._set:
            return at_once(True)
        return self._new_waiter(asyncio.get_running_loop())

    def wait_for(self, delay: float) -> Awaitable[bool]:
        """An awaitable that answers True once set, or False once ``delay`` (loop clock s) has
        passed, whichever comes first (await it at once: one waiting task)."""
        loop = asyncio.get_running_loop()
        waiter = self._new_waiter(loop)
        now = loop.time()
        when = now + delay  # as asyncio.timeout(delay) computes and schedules it
        self._timer = loop.call_soon(self._expire, waiter) if when <= now else \
            loop.call_at(when, self._expire, waiter)
        return waiter

    def _new_waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool]:
        old = self._waiter
        # one waiting task; a waiter left behind by a task cancelled while it waited is done
        assert old is None or old.done(), "a Wake has one waiting task"
        if self._timer is not None:  # (that cancelled task's deadline)
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter = loop.create_future()
        return waiter

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        self._timer = None
        if self._waiter is waiter:
            self._waiter = None
        if not waiter.done():
            waiter.set_result(False)


async def at_once(answer: T) -> T:
    """``answer``, as an awaitable that does not wait."""
    return answer

"""The handles the virtual-time loop (``virtual_loop.py``) returns for scheduled callbacks: a
:class:`Call` for ``call_soon``, a :class:`Timer` (due at an emu time) for ``call_at`` and
``call_later``. They offer ``asyncio.Handle``'s public interface (``cancel``, ``cancelled``,
``when``), not its class; a context of None means the callback runs in the loop's own context.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Protocol


class _Loop(Protocol):
    """What a timer tells its loop: one more cancelled timer in the heap."""

    timers_cancelled: int


class Call:
    """A callback scheduled on the loop (what ``call_soon`` returns). Made only by the loop,
    which sets the slots itself: an ``__init__`` is a Python frame per handle (~120k a run)."""

    __slots__ = ("_cancelled", "args", "callback", "context")
    callback: Callable[..., Any]
    args: tuple[Any, ...]
    context: contextvars.Context | None  # None: run as is (see the module docstring)
    _cancelled: bool

    def cancel(self) -> None:
        """Do not run the callback."""
        self._cancelled = True

    def cancelled(self) -> bool:
        """True once cancelled."""
        return self._cancelled


class Timer(Call):
    """A callback due at emu time ``when_s`` (what ``call_at`` / ``call_later`` return); made
    only by the loop, as :class:`Call`."""

    __slots__ = ("loop", "scheduled", "when_s")
    when_s: float
    loop: _Loop
    scheduled: bool  # in the loop's heap

    def cancel(self) -> None:
        """Do not run the callback; the loop counts it for compacting its heap."""
        if not self._cancelled and self.scheduled:
            self.loop.timers_cancelled += 1
        self._cancelled = True

    def when(self) -> float:
        """Emu time the callback is due, seconds."""
        return self.when_s

    def __lt__(self, other: Timer) -> bool:
        # heap entries are (when_s, timer): reached only on equal times, where "<" is False
        return False

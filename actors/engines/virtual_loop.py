"""An asyncio event loop on virtual time that owns its timer heap and ready queue.

``time()`` is emu time. Each step runs the callbacks that were ready when it began; when none is
ready, the clock jumps to the earliest timer first. There is no selector (the virtual engine does
no I/O) and nothing of asyncio's private loop internals is used: asyncio's Tasks, Futures,
``sleep``, ``wait``, ``wait_for`` and ``Event`` only need the public loop methods defined here.

The order of callbacks is the one ``asyncio.BaseEventLoop`` gives (the virtual engine used to be a
subclass of it, and its results must not change): FIFO for ready callbacks; timers in a binary
heap compared by due time only (ties come out in heap order); every timer due within the clock
resolution of now joins one step; cancelled timers leave the heap when they reach its top, or all
at once when more than half of a heap of over 100 is cancelled.

Shortcuts asyncio's loop does not take (none changes the order of callbacks): a callback
scheduled without a context (messages, timers) runs in the loop's own context instead of a copy
made per callback — nothing in the engine sets context variables, and Tasks and Futures pass
their own; a message (:meth:`VirtualTimeLoop.deliver_soon`) waits in the ready queue as a plain
tuple, with no handle; and the wall clock is read for the tick only every ``_TICK_CHECK_STEPS``
steps.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from heapq import heapify, heappop, heappush
from typing import Any

from disagg.actors.engines.stop import StopFlag
from disagg.actors.engines.virtual_handles import Call, Timer

_log = logging.getLogger(__name__)

_CLOCK_RESOLUTION_S = time.get_clock_info("monotonic").resolution  # as asyncio's loop uses
_MIN_SCHEDULED_TO_COMPACT = 100  # asyncio.base_events._MIN_SCHEDULED_TIMER_HANDLES
_MIN_CANCELLED_FRACTION = 0.5  # asyncio.base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
_MIN_CANCELLED_TO_COMPACT = _MIN_SCHEDULED_TO_COMPACT * _MIN_CANCELLED_FRACTION  # (precomputed)
_new_handle = object.__new__
_TICK_CHECK_STEPS = 64  # steps between looks at the wall clock for the tick


class VirtualTimeLoop(asyncio.AbstractEventLoop):
    """An event loop whose clock (emu seconds) jumps to the next timer whenever nothing is ready.

    I/O, signals, subprocesses and executors are not implemented (the virtual engine does none);
    typeshed declares them abstract, hence the ``type: ignore[abstract]`` where it is made."""

    def __init__(self) -> None:
        self.now_s = 0.0  # emu time (s): read as is by VirtualClock, written by the loop only
        # a ready entry is a Call (or Timer), or a message's (callback, target, message) tuple
        self._ready: deque[Call | tuple[Callable[[Any, Any], Any], Any, Any]] = deque()
        self._timers: list[tuple[float, Timer]] = []
        self.timers_cancelled = 0  # cancelled timers still in the heap, as asyncio counts them
        self._running = False
        self._stopping = False
        self._closed = False
        self._exception_handler: Callable[[Any, dict[str, Any]], object] | None = None
        self._tick: Callable[[], None] | None = None
        self._tick_every_s = 0.0
        self._next_tick_wall = 0.0
        self._stop_flag = StopFlag()  # none requested until set_stop gives the run's
        self._on_stop: Callable[[], Any] | None = None
        self.steps = 0  # loop steps run (for profiles and benchmarks)

    # -- the clock and scheduling ------------------------------------------------------------
    def time(self) -> float:
        """Emu time, seconds."""
        return self.now_s

    # the handles offer asyncio.Handle's public interface (cancel, cancelled, when), not its class
    def call_soon(self, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                  context: contextvars.Context | None = None) -> Call:
        """Run ``callback(*args)`` in a later step, after the callbacks already ready."""
        call = _new_handle(Call)  # (the handle's slots set here: no __init__ frame)
        call.callback = callback
        call.args = args
        call.context = context
        call._cancelled = False
        self._ready.append(call)
        return call

    def deliver_soon(self, callback: Callable[[Any, Any], Any], target: Any, message: Any) -> None:
        """Run ``callback(target, message)`` in a later step, in FIFO order with :meth:`call_soon`'s
        callbacks, in the loop's context; no handle (it cannot be cancelled). The message path
        (~9 a request): a tuple in the ready queue, not a :class:`Call` made per message."""
        self._ready.append((callback, target, message))

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                context: contextvars.Context | None = None) -> Timer:
        """Run ``callback(*args)`` at emu time ``when`` (seconds)."""
        timer = _new_handle(Timer)  # (as call_soon's)
        timer.callback = callback
        timer.args = args
        timer.context = context
        timer._cancelled = False
        timer.when_s = when
        timer.loop = self
        timer.scheduled = True
        heappush(self._timers, (when, timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any],  # type: ignore[override]
                   *args: Any, context: contextvars.Context | None = None) -> Timer:
        """Run ``callback(*args)`` after ``delay`` emu seconds."""
        return self.call_at(self.now_s + delay, callback, *args, context=context)

    def call_soon_threadsafe(self, callback: Callable[..., Any],  # type: ignore[override]
                             *args: Any, context: contextvars.Context | None = None) -> Call:
        """As :meth:`call_soon` (the virtual engine has one thread)."""
        return self.call_soon(callback, *args, context=context)

    def create_future(self) -> asyncio.Future[Any]:
        """A Future bound to this loop."""
        return asyncio.Future(loop=self)

    def create_task(self, coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any], *,
                    name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        """A Task running ``coro`` on this loop."""
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def set_tick(self, tick: Callable[[], None], every_wall_s: float) -> None:
        """Call ``tick`` between loop steps every ``every_wall_s`` seconds of *wall* time."""
        self._tick, self._tick_every_s = tick, every_wall_s
        self._next_tick_wall = time.monotonic() + every_wall_s

    def set_stop(self, stop: StopFlag, on_stop: Callable[[], Any]) -> None:
        """Call ``on_stop`` once, between loop steps, after ``stop`` is requested (Ctrl-C)."""
        self._stop_flag, self._on_stop = stop, on_stop

    # -- running ------------------------------------------------------------------------------
    def run_until_complete(self, future: Any) -> Any:
        """Run until ``future`` (a coroutine, Task or Future) is done; return its result."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        task = asyncio.ensure_future(future, loop=self)
        task.add_done_callback(self._stop_when_done)
        try:
            self.run_forever()
        finally:
            task.remove_done_callback(self._stop_when_done)
        if not task.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return task.result()

    def _stop_when_done(self, _future: asyncio.Future[Any]) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Run steps until :meth:`stop` is called."""
        if self._running:
            raise RuntimeError("This event loop is already running")
        self._running = True
        asyncio._set_running_loop(self)  # the hook every event loop sets (asyncio.events.__all__)
        try:
            self._run_steps()
        finally:
            self._stopping = False
            self._running = False
            asyncio._set_running_loop(None)

    def _run_steps(self) -> None:
        """Steps until stopped. Each step: jump the clock if nothing is ready, move due timers
        to the ready queue, run the callbacks that are ready now (those they schedule wait for
        the next step). One loop with its names bound once, not a method call per step: a run
        takes ~14 steps per request."""
        ready = self._ready
        popleft = ready.popleft
        while True:
            if self._stop_flag.requested and self._on_stop is not None:
                on_stop, self._on_stop = self._on_stop, None
                on_stop()
            self.steps = steps = self.steps + 1
            if not steps % _TICK_CHECK_STEPS and self._tick is not None:
                if time.monotonic() >= self._next_tick_wall:
                    self._next_tick_wall = time.monotonic() + self._tick_every_s
                    self._tick()
            timers = self._timers  # (re-read: compacting replaces the list)
            if not ready:
                while timers and timers[0][1]._cancelled:
                    heappop(timers)[1].scheduled = False  # not counted down: as before
                if timers:
                    if timers[0][0] > self.now_s:
                        self.now_s = timers[0][0]
                elif not self._stopping:
                    raise RuntimeError(
                        "virtual engine deadlock: every task waits and no timer is set")
            if timers:
                if timers[0][1]._cancelled or (  # the first test is implied by the other two
                        self.timers_cancelled > _MIN_CANCELLED_TO_COMPACT
                        and len(timers) > _MIN_SCHEDULED_TO_COMPACT
                        and self.timers_cancelled / len(timers) > _MIN_CANCELLED_FRACTION):
                    self._drop_cancelled(timers)  # else it would do nothing
                    timers = self._timers
                end_s = self.now_s + _CLOCK_RESOLUTION_S
                while timers and timers[0][0] < end_s:
                    timer = heappop(timers)[1]
                    timer.scheduled = False
                    ready.append(timer)
            for _ in range(len(ready)):  # the callbacks ready now, in order
                call: Any = popleft()  # (Any: mypy does not narrow on __class__)
                try:
                    if call.__class__ is tuple:  # a message (deliver_soon); not isinstance: cheaper
                        call[0](call[1], call[2])
                    elif call._cancelled:
                        continue
                    elif call.context is None:
                        call.callback(*call.args)
                    else:
                        call.context.run(call.callback, *call.args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # noqa: BLE001 - reported as asyncio's loop does
                    callback = call[0] if call.__class__ is tuple else call.callback
                    self.call_exception_handler({
                        "message": f"Exception in callback {callback!r}", "exception": exc,
                    })
            if self._stopping:
                return

    def _drop_cancelled(self, timers: list[tuple[float, Timer]]) -> None:
        """Remove cancelled timers: all of them when they are many, else those at the top."""
        if (len(timers) > _MIN_SCHEDULED_TO_COMPACT
                and self.timers_cancelled / len(timers) > _MIN_CANCELLED_FRACTION):
            kept = []
            for entry in timers:
                if entry[1]._cancelled:
                    entry[1].scheduled = False
                else:
                    kept.append(entry)
            heapify(kept)
            self._timers = kept
            self.timers_cancelled = 0
            return
        while timers and timers[0][1]._cancelled:
            self.timers_cancelled -= 1
            heappop(timers)[1].scheduled = False

    def stop(self) -> None:
        """Stop after the current step."""
        self._stopping = True

    def is_running(self) -> bool:
        """True while :meth:`run_forever` runs."""
        return self._running

    def is_closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Drop every pending callback; the loop cannot run again."""
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        self._closed = True
        self._ready.clear()
        self._timers.clear()

    async def shutdown_asyncgens(self) -> None:
        """Nothing to do: the loop does not track async generators."""

    async def shutdown_default_executor(self) -> None:
        """Nothing to do: the loop has no executor."""

    # -- errors and debug ---------------------------------------------------------------------
    def get_debug(self) -> bool:
        """Always False: asyncio's debug mode is not supported."""
        return False

    def set_debug(self, enabled: bool) -> None:
        """Refuse debug mode, which the loop does not support."""
        if enabled:
            raise NotImplementedError("the virtual-time loop has no debug mode")

    def set_exception_handler(self, handler: Callable[[Any, dict[str, Any]], object] | None) -> None:
        """Call ``handler(loop, context)`` for errors no task awaits (None: log them)."""
        self._exception_handler = handler

    def get_exception_handler(self) -> Callable[[Any, dict[str, Any]], object] | None:
        """The handler set by :meth:`set_exception_handler`, or None."""
        return self._exception_handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log the error (as asyncio's default handler does)."""
        _log.error(context.get("message", "Unhandled exception in event loop"),
                   exc_info=context.get("exception"))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Hand ``context`` to the exception handler (or log it)."""
        if self._exception_handler is None:
            self.default_exception_handler(context)
        else:
            self._exception_handler(self, context)

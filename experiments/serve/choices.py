"""The emulated requests behind one HTTP request: ``n`` choices (vLLM's ``n``), each its own
emulated request paced by its own :class:`TokenPacer`, merged in the order their tokens come
due; and the end of those requests when the client goes away (vLLM aborts a request whose client
disconnected: here each open choice is cancelled in the cluster, reason ``client_disconnected``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from disagg.experiments.serve.pacing import Backend, Due, Ended, TokenPacer

CLIENT_DISCONNECTED = "client_disconnected"
T = TypeVar("T")

OnDue = Callable[[TokenPacer, Due], None]


class Choices:
    """``n`` emulated requests of one HTTP request; ``on_due(pacer, due)`` sees every release
    (the per-token counters)."""

    def __init__(self, backend: Backend, request_ids: list[int], output_tokens: int,
                 on_due: OnDue, arrival_s: float | None = None) -> None:
        self.backend = backend
        self.pacers = [TokenPacer(backend, rid, output_tokens, arrival_s)
                       for rid in request_ids]
        self._events = [p.events().__aiter__() for p in self.pacers]
        self._open = set(range(len(request_ids)))
        self._on_due = on_due
        self._cancels: set[asyncio.Task[Any]] = set()

    async def _next(self, i: int) -> Due | Ended | None:
        try:
            ev = await self._events[i].__anext__()
        except StopAsyncIteration:
            self._open.discard(i)
            return None
        if isinstance(ev, Ended):
            self._open.discard(i)
        else:
            self._on_due(self.pacers[i], ev)
        return ev

    async def firsts(self) -> list[Due | Ended]:
        """Every choice's first event (its first token, or its end before one)."""
        events = await asyncio.gather(*(self._next(i) for i in range(len(self.pacers))))
        return [ev for ev in events if ev is not None]

    async def rest(self) -> AsyncIterator[tuple[int, Due | Ended]]:
        """(choice, event) as they come due, until every choice is out or one ended."""
        tasks = {asyncio.ensure_future(self._next(i)): i for i in sorted(self._open)}
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: tasks[t]):
                    i = tasks.pop(task)
                    ev = task.result()
                    if ev is None:
                        continue
                    yield i, ev
                    if isinstance(ev, Ended):
                        return
                    tasks[asyncio.ensure_future(self._next(i))] = i
        finally:
            for task in tasks:
                task.cancel()

    def abandon(self, reason: str = CLIENT_DISCONNECTED) -> None:
        """Cancel every choice still open in the cluster (fire and forget: the client is gone,
        or the server is cutting the stream)."""
        for i in sorted(self._open):
            task = asyncio.ensure_future(self.backend.cancel(self.pacers[i].request_id, reason))
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)
        self._open.clear()


async def until_disconnect(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    """Return once the ASGI client disconnects (the request body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(work: Awaitable[T],
                              receive: Callable[[], Awaitable[Mapping[str, Any]]]
                              ) -> tuple[bool, T | None]:
    """Run ``work`` unless the client disconnects first: (True, result) or (False, None)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(until_disconnect(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return True, task.result()
    task.cancel()
    return False, None

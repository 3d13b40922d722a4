"""The virtual-time event loop: asyncio's primitives on emu time, in asyncio's callback order."""

from __future__ import annotations

import asyncio
import heapq

import pytest

from disagg.actors.engines.virtual_loop import VirtualTimeLoop


def run(coro):  # type: ignore[no-untyped-def]
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro), loop
    finally:
        loop.close()


def test_sleep_moves_emu_time_exactly_and_costs_no_wall_time() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = []
        for delay in (0.5, 1e-6, 3600.0):
            await asyncio.sleep(delay)
            seen.append(loop.time())
        return seen

    seen, _ = run(main())
    assert seen == [0.5, 0.5 + 1e-6, 0.5 + 1e-6 + 3600.0]


def test_ready_callbacks_run_fifo_and_new_ones_wait_for_the_next_step() -> None:
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(order.append, "a")
        loop.call_soon(lambda: (order.append("b"), loop.call_soon(order.append, "d")))
        loop.call_soon(order.append, "c")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    _, loop = run(main())
    assert order == ["a", "b", "c", "d"]
    assert loop.time() == 0.0


def test_messages_queue_fifo_with_callbacks() -> None:
    order: list[str] = []

    def deliver(target: list[str], message: str) -> None:
        target.append(message)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        loop.call_soon(order.append, "a")
        loop.deliver_soon(deliver, order, "b")
        loop.call_soon(lambda: (order.append("c"), loop.deliver_soon(deliver, order, "e")))
        loop.deliver_soon(deliver, order, "d")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    run(main())
    assert order == ["a", "b", "c", "d", "e"]


def test_equal_time_timers_come_out_in_heap_order_like_asyncio() -> None:
    class ByWhen:  # asyncio's TimerHandle compares by due time only
        def __init__(self, when: float, name: str) -> None:
            self.when, self.name = when, name

        def __lt__(self, other: ByWhen) -> bool:
            return self.when < other.when

    plan = [(2.0, "a"), (1.0, "b"), (2.0, "c"), (1.0, "d"), (2.0, "e"), (1.0, "f"), (2.0, "g")]
    heap: list[ByWhen] = []
    for when, name in [*plan, (5.0, "the sleep below")]:
        heapq.heappush(heap, ByWhen(when, name))
    expected = [heapq.heappop(heap).name for _ in plan]
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for when, name in plan:
            loop.call_at(when, order.append, name)
        await asyncio.sleep(5.0)

    run(main())
    assert order == expected


def test_cancelled_timers_do_not_run_and_a_mostly_cancelled_heap_is_compacted() -> None:
    fired: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        timers = [loop.call_at(1.0 + i, fired.append, i) for i in range(300)]
        for t in timers[:250]:
            t.cancel()
        await asyncio.sleep(0)
        return len(loop._timers)  # the heap after one step

    left, _ = run(main())
    assert left == 50  # sleep(0) sets no timer
    assert fired == []


def test_live_timers_after_compaction_fire_in_time_order() -> None:
    fired: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers = [loop.call_at(1.0 + i, fired.append, i) for i in range(300)]
        for t in timers[::3] + timers[1::3]:
            t.cancel()
        await asyncio.sleep(1000.0)

    run(main())
    assert fired == list(range(2, 300, 3))


def test_event_wait_with_timeout_wakes_on_set_or_times_out_at_emu_deadline() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        out = []
        loop.call_later(2.0, event.set)
        try:
            async with asyncio.timeout(5.0):
                await event.wait()
            out.append(("woke", loop.time()))
        except TimeoutError:
            out.append(("timeout", loop.time()))
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), 1.5)
        except TimeoutError:
            out.append(("timeout", loop.time()))
        return out

    out, _ = run(main())
    assert out == [("woke", 2.0), ("timeout", 3.5)]


def test_wait_first_completed_and_task_cancellation() -> None:
    async def main() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        slow = loop.create_task(asyncio.sleep(10.0))
        fast = loop.create_task(asyncio.sleep(1.0))
        done, _ = await asyncio.wait([slow, fast], return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast}
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        return loop.time(), slow.cancelled()

    (now, cancelled), _ = run(main())
    assert now == 1.0
    assert cancelled


def test_deadlock_is_an_error_not_a_hang() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    loop = VirtualTimeLoop()
    with pytest.raises(RuntimeError, match="deadlock"):
        loop.run_until_complete(main())
    loop.close()


def test_errors_in_callbacks_reach_the_exception_handler() -> None:
    seen: list[BaseException] = []
    loop = VirtualTimeLoop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx["exception"]))

    async def main() -> None:
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        loop.deliver_soon(lambda target, message: target[message], {}, "absent")
        await asyncio.sleep(1.0)

    loop.run_until_complete(main())
    loop.close()
    assert [type(e) for e in seen] == [ZeroDivisionError, KeyError]
    again = main()
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(again)
    again.close()

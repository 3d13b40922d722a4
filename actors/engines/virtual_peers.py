"""The virtual engine's plumbing: its clock (the loop's virtual time), the peers that deliver
messages as loop callbacks after a modeled delay, and the live-view tick that folds the
components' state reports into the collector."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from disagg.actors.components.live_state import LiveReporter
from disagg.actors.engines.virtual_loop import VirtualTimeLoop
from disagg.cluster.component import Clock, Component
from disagg.cluster.errors import ComponentFailed
from disagg.cluster.messages import LoadReport

Progress = Callable[[dict[str, Any]], None]


class _Run(Protocol):
    """What the live tick reads of a virtual run."""

    comps: dict[str, Component]
    lost: set[str]
    loop: Any  # the run's VirtualTimeLoop


class VirtualClock(Clock):
    """Emu time is the loop's virtual time (its ``now_s``, read without calling ``time()``:
    components ask the clock a few times per message)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.now_s

    def loop_delay_s(self, emu_s: float) -> float:
        return emu_s - self.loop.now_s

    def event_loop(self) -> VirtualTimeLoop:
        return self.loop


class LocalPeer:
    """Delivers messages to a component as loop callbacks, after ``delay_s`` of virtual time.
    Messages to or from a lost unit vanish (``alive`` False), as they would with its machine;
    a restarted unit gets the same peer pointed at its fresh component. A handler that raises
    goes to ``on_error`` as a :class:`ComponentFailed` naming the component (without one it
    propagates to the loop)."""

    def __init__(self, loop: VirtualTimeLoop, target: Component, delay_s: float,
                 on_error: Callable[[ComponentFailed], None] | None = None) -> None:
        self.loop = loop
        self.target = target
        self.delay_s = delay_s
        self.alive = True
        self.on_error = on_error
        self._fifo: deque[Any] = deque()

    def send(self, message: Any) -> None:
        if not self.alive:
            return
        if self.delay_s <= 0:
            self.loop.deliver_soon(self._deliver_now, self.target, message)
            return
        self._fifo.append(message)
        self.loop.call_later(self.delay_s, self._deliver_next)

    def _deliver_now(self, target: Component, message: Any) -> None:
        # :meth:`_handle` inlined: this runs once per message
        if not self.alive or target is not self.target:
            return
        if self.on_error is None:
            target.deliver(message)
            return
        try:
            target.deliver(message)
        except Exception as e:  # noqa: BLE001 - ends the run naming the component
            self.on_error(ComponentFailed.of(target.name, e))

    def _deliver_next(self) -> None:
        if self._fifo:
            message = self._fifo.popleft()
            if self.alive:
                self._handle(message)

    def _handle(self, message: Any) -> None:
        if self.on_error is None:
            self.target.deliver(message)
            return
        try:
            self.target.deliver(message)
        except Exception as e:  # noqa: BLE001 - ends the run naming the component
            self.on_error(ComponentFailed.of(self.target.name, e))

    def cut(self) -> None:
        """The unit is lost: drop what is in flight to it and everything sent from now on."""
        self.alive = False
        self._fifo.clear()


@runtime_checkable
class ReportInbox(Protocol):
    """A component that takes load reports arriving at once without a loop callback (the
    router: :meth:`~disagg.actors.components.router.Router.post_report`)."""

    def post_report(self, msg: LoadReport) -> bool: ...


class PostingPeer(LocalPeer):
    """A :class:`LocalPeer` to a :class:`ReportInbox`: a ``LoadReport`` that arrives at once
    (no modeled delay) is posted to it, for its next decision, when it takes it; anything else
    is a message as usual."""

    def send(self, message: Any) -> None:
        if (type(message) is LoadReport and self.alive and self.delay_s <= 0
                and self.target.post_report(message)):  # type: ignore[attr-defined]
            return  # (the target is a ReportInbox: typing.cast would be a call per send)
        super().send(message)


class Lost:
    """The peers of a lost unit: whatever it still tries to send goes nowhere."""

    def send(self, message: Any) -> None:
        return None



def live_tick(run: _Run, progress: Progress) -> Callable[[], None]:
    """Fold the components' state reports into the collector (the engine does what the ray
    hosts' report loops do) and hand its snapshot to ``progress``. A lost unit reports no more,
    as its actor would not."""
    collector = run.comps["collector"]
    reporters = {n: LiveReporter(c) for n, c in run.comps.items() if n != "collector"}

    def tick() -> None:
        for name, reporter in reporters.items():
            if name in run.lost:
                continue
            if reporter.component is not run.comps[name]:  # restarted
                reporter = reporters[name] = LiveReporter(run.comps[name])
            report = reporter.next_report()
            if report is not None:
                collector.deliver(report)
        progress({"now_s": run.loop.time(), **collector.snapshot()})

    return tick



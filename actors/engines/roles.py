"""The driver's side of the ray engine: small typed façades over actor handles, one per role
(the ledger, the arrivals, the gateway, the units), so the engine, the supervisor and
``disagg serve`` call a role, not a host class that does everything. Each finds its component
by name on whichever actor hosts it (``[placement]`` options may group them).

An actor call that fails because a component raised comes back from ``ray.get`` as Ray's
``RayTaskError`` wrapping :class:`ComponentFailed`; :func:`reraise_typed` raises the failure
itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from disagg.actors.components.collector import Drained
from disagg.actors.components.gateway import Outcome, Pin, PlanUpdate
from disagg.cluster.errors import ComponentFailed


@contextmanager
def reraise_typed() -> Iterator[None]:
    """Raise a component's :class:`ComponentFailed` as itself out of Ray's task error."""
    try:
        yield
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, ComponentFailed):
            raise ComponentFailed(cause.name, cause.exc_type, cause.message) from None
        raise


class LedgerFacade:
    """The collector's actor as the run's ledger (emu s, wall s where named)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def wait_done(self, timeout_s: float) -> bool:
        """True once every submitted request ended, waiting at most ``timeout_s`` wall s."""
        with reraise_typed():
            return bool(ray.get(self.handle.wait_done.remote(timeout_s)))

    def status(self) -> dict[str, Any]:
        """The collector's snapshot and emu time (``now_s``)."""
        with reraise_typed():
            status: dict[str, Any] = ray.get(self.handle.status.remote())
        return status

    async def status_async(self) -> dict[str, Any]:
        """:meth:`status` from an asyncio loop."""
        with reraise_typed():
            status: dict[str, Any] = await self.handle.status.remote()
        return status

    def ended_ids(self) -> frozenset[int]:
        """The requests that have ended so far."""
        return frozenset(ray.get(self.handle.ended_ids.remote()))

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> Drained:
        """The rows finished since the last drain (see ``Collector.drain``)."""
        drained: Drained = ray.get(self.handle.drain.remote(final, unfinished, arrivals))
        return drained


class ArrivalsFacade:
    """The load generator's (or the gateway's) actor as the run's source of requests."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def last_arrival_s(self) -> float:
        """Emu time by which every planned arrival has happened."""
        return float(ray.get(self.handle.last_arrival_s.remote()))

    def stop_arrivals(self, timeout_s: float) -> tuple[Any, ...]:
        """Submit nothing more; the requests sent but not yet reported to the collector."""
        return tuple(ray.get(self.handle.stop_arrivals.remote(), timeout=timeout_s))


class GatewayFacade:
    """The gateway's actor as the HTTP side of ``disagg serve`` sees it (awaitable calls)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
                     pin: Pin | None = None) -> int:
        """One request into the router at emu time ``arrival_s``; its request id."""
        return int(await self.handle.submit.remote(prompt_tokens, output_tokens, arrival_s, pin))

    async def decode_leg(self, request_id: int, decode_unit: str, output_tokens: int) -> bool:
        """A P/D request's decode leg reached ``decode_unit`` (see ``Gateway.decode_leg``)."""
        return bool(await self.handle.decode_leg.remote(request_id, decode_unit, output_tokens))

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """The request's token plan once it changed past ``version`` (or after ``timeout_s``)."""
        update: PlanUpdate = await self.handle.wait.remote(request_id, version, from_index,
                                                           timeout_s)
        return update

    async def outcomes(self, cursor: int) -> list[Outcome]:
        """Requests that ended after the first ``cursor`` ends."""
        outcomes: list[Outcome] = await self.handle.outcomes.remote(cursor)
        return outcomes

    async def cancel(self, request_id: int, reason: str) -> bool:
        """End the request ``cancelled`` in the cluster (its client went away)."""
        return bool(await self.handle.cancel.remote(request_id, reason))


class UnitsFacade:
    """The unit actors as faults and supervision reach them: stop or restart one unit on an
    actor hosting others, deliver an engine message, ping every actor."""

    def __init__(self, handles: dict[str, Any]) -> None:
        self.handles = handles  # component name -> its actor (shared by co-hosted ones)

    def shared(self, unit: str) -> bool:
        """True if ``unit``'s actor hosts other components too."""
        handle = self.handles[unit]
        return sum(h == handle for h in self.handles.values()) > 1

    def stop(self, unit: str) -> None:
        """Stop ``unit`` on its (shared) actor; messages to it are dropped from now on."""
        self.handles[unit].stop_component.remote(unit)

    def restart(self, unit: str) -> None:
        """A fresh ``unit`` on its (shared) actor; raises ``RayActorError`` if the actor died."""
        ray.get(self.handles[unit].restart_component.remote(unit))

    def send(self, name: str, message: Any) -> None:
        """Deliver an engine message to component ``name``."""
        self.handles[name].deliver.remote(message, name)

    def one_per_actor(self, names: list[str]) -> list[str]:
        """The first of ``names`` on each actor."""
        seen: set[Any] = set()
        out = []
        for name in names:
            if self.handles[name] not in seen:
                seen.add(self.handles[name])
                out.append(name)
        return out

"""The engine behind ``disagg serve``: the ray engine (:class:`RayEngine` with ``serving``,
the same placement, clock offsets and start margin, so every ``[placement]`` option holds) plus
a gateway in the load generator's place, running until the server stops.

:class:`ServedCluster` hands the HTTP side awaitable calls into the gateway (submit a request,
long-poll its token plan, fetch finished requests for the metrics) and the collector (the live
picture). :meth:`ServedCluster.watch` pings every actor every ``[placement] failure_poll_s``: a
component that raised (:class:`ComponentFailed`) or a lost control actor marks the cluster
failed, so ``/health`` answers 503, open streams end with an error and new requests are refused.
:meth:`ServedCluster.stop` ends the run the way every engine does
(:func:`~disagg.actors.engines.engine.finish`): arrivals stop, the requests still open are
``cancelled`` (or ``failed`` after a failure) and the results come back as :class:`RunResults`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray

from disagg.actors.components.gateway import Outcome, Pin, PlanUpdate
from disagg.actors.engines.engine import Ending, RunResults, finish
from disagg.actors.engines.ray_engine import RayEngine
from disagg.actors.engines.roles import GatewayFacade, LedgerFacade
from disagg.actors.engines.supervisor import ComponentLost
from disagg.cluster.config import Experiment
from disagg.cluster.errors import ComponentFailed

FAILED_REASON = "emulator_component_failed"
LOST_REASON = "emulator_component_lost"


class ServedCluster:
    """The experiment's cluster on Ray, fed by HTTP requests instead of a planned workload."""

    def __init__(self, exp: Experiment, address: str | None = None, live_s: float = 0.5) -> None:
        self.exp = exp
        self.engine = RayEngine(exp, address, live_s=live_s, serving=True)
        self.dilation = exp.experiment.dilation
        self.failure: ComponentFailed | None = None
        self.lost = ""  # a lost control component, if one was
        self._broken = asyncio.Event()  # set once failed or lost (in the server's loop)
        self._gateway: GatewayFacade | None = None
        self._ledger: LedgerFacade | None = None

    @property
    def t0(self) -> float:
        """Wall time of emu time 0."""
        return self.engine.t0

    def start(self) -> None:
        """Start Ray (or join the address), place and start every actor; returns at ``t0``, once
        emu time runs."""
        self.engine.start()
        self._gateway = GatewayFacade(self.engine.handles["gateway"])
        self._ledger = LedgerFacade(self.engine.handles["collector"])
        # take requests only once emu time runs (a request before t0 would wait for it)
        time.sleep(max(0.0, self.t0 - time.time()))

    def emu_now(self) -> float:
        """The cluster's emu time now (driver clock)."""
        return self.engine.emu_now()

    def _mark(self, failure: ComponentFailed | None, lost: str = "") -> None:
        if self.failure is None and not self.lost:
            self.failure, self.lost = failure, lost
        self._broken.set()

    @property
    def broken(self) -> str:
        """Why the cluster can serve no more ('' while it can)."""
        if self.failure is not None:
            return str(self.failure)
        return f"the {self.lost} component was lost" if self.lost else ""

    async def watch(self) -> None:
        """Ping every actor every ``[placement] failure_poll_s`` wall s until one fails."""
        while not self.broken:
            await asyncio.sleep(self.exp.placement.failure_poll_s)
            try:
                await asyncio.to_thread(self.engine.check)
            except ComponentFailed as e:
                self._mark(e)
            except ComponentLost as e:
                self._mark(None, e.name)

    def _ended(self, request_id: int, version: int, from_index: int) -> PlanUpdate:
        reason = FAILED_REASON if self.failure is not None else LOST_REASON
        return PlanUpdate(request_id, version + 1, None, (), from_index, "failed", reason, None)

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
                     pin: Pin | None = None) -> int:
        """One request into the router at emu time ``arrival_s`` (served by the units ``pin``
        names, if any); its request id (-1 once the cluster failed: its plan ends at once)."""
        assert self._gateway is not None
        if self.broken:
            return -1
        return await self._gateway.submit(prompt_tokens, output_tokens, arrival_s, pin)

    async def decode_leg(self, request_id: int, decode_unit: str, output_tokens: int) -> bool:
        """A P/D request's decode leg reached ``decode_unit``: its KV moves there."""
        assert self._gateway is not None
        return not self.broken and await self._gateway.decode_leg(request_id, decode_unit,
                                                                  output_tokens)

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """The request's token plan once it changed past ``version`` (or after ``timeout_s``);
        ended ``failed`` as soon as the cluster failed."""
        assert self._gateway is not None
        if self.broken or request_id < 0:
            return self._ended(request_id, version, from_index)
        poll = asyncio.ensure_future(self._gateway.wait(request_id, version, from_index,
                                                        timeout_s))
        broken = asyncio.ensure_future(self._broken.wait())
        try:
            await asyncio.wait({poll, broken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
        if poll.done():
            return poll.result()
        poll.cancel()
        return self._ended(request_id, version, from_index)

    async def cancel(self, request_id: int, reason: str) -> None:
        """The request's client went away: the unit holding it ends it ``cancelled``."""
        assert self._gateway is not None
        if request_id >= 0 and not self.broken:
            await self._gateway.cancel(request_id, reason)

    async def outcomes(self, cursor: int) -> list[Outcome]:
        """Requests that ended after the first ``cursor`` ends."""
        assert self._gateway is not None
        return await self._gateway.outcomes(cursor)

    def lost_units(self) -> list[str]:
        """Each unit lost so far (its actor died), with why: the cluster still serves on the
        others (the router redoes their requests), but is no longer the one configured."""
        return [f"unit {name} was lost ({why})" for name, why in list(self.engine.lost.items())]

    async def status(self) -> dict[str, Any]:
        """The collector's snapshot (with the live picture) and emu time; ``errors`` names the
        failure once the cluster failed, the actors whose ping is late (maybe hung), or each unit
        lost (``/health`` answers 503)."""
        assert self._ledger is not None
        if not self.broken:
            try:
                return {"errors": [*self._unanswered(), *self.lost_units()],
                        **await self._ledger.status_async()}
            except ComponentFailed as e:
                self._mark(e)
            except ray.exceptions.RayActorError:
                self._mark(None, "collector")
        return {"errors": [self.broken], "snapshot": {}, "now_s": self.emu_now()}

    def _unanswered(self) -> list[str]:
        """An error per actor whose ping is late (maybe hung: ``/health`` answers 503 until it
        answers or is declared lost)."""
        late = self.engine.unanswered
        return [f"{', '.join(late)} not answering (declared lost if silent for "
                f"{self.exp.placement.hang_timeout_s:g} s)"] if late else []

    def stop(self, reason: str = "interrupted") -> RunResults:
        """Stop taking requests and end the run at once: requests still open are ``cancelled``
        with ``reason`` (``failed`` after a failure); gather every component's results and remove
        the actors (and Ray, if this started it)."""
        if self.failure is not None:
            ending = Ending("failed", component=self.failure.name, failure=self.failure)
        elif self.lost:
            ending = Ending("lost", component=self.lost)
        else:
            ending = Ending("stopped", reason)
        try:
            return finish(self.engine, ending)
        finally:
            self.close()

    def close(self) -> None:
        """Remove the actors (and Ray, if this started it)."""
        self.engine.close()

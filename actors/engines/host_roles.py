"""The role-specific calls of a Ray actor's body (:class:`~disagg.actors.engines.host.
ComponentHost`), one mixin per role: the ledger (the collector), the arrivals (the load generator
or the gateway), the gateway's HTTP side and the units' stop and restart. Each finds its
component by name, so it works whether the actor hosts that component alone or with others
(``[placement] one_control_actor``); the driver reaches them through the façades in
``roles.py``."""

from __future__ import annotations

import asyncio
from typing import Any

from disagg.actors.components.gateway import Gateway, Outcome, Pin, PlanUpdate
from disagg.cluster.component import Component, as_arrivals, as_ledger


class _Hosted:
    """What the roles read of the host."""

    components: dict[str, Component]

    def _named(self, name: str) -> Component:
        raise NotImplementedError

    def raise_failure(self) -> None:
        raise NotImplementedError


class LedgerRole(_Hosted):
    """The collector's calls: what has ended, the rows finished, whether all are done."""

    def ended_ids(self) -> list[int]:
        """The requests that have ended so far."""
        return sorted(as_ledger(self._named("collector")).ended_ids())

    def drain(self, final: bool = False, unfinished: tuple[str, str] | None = None,
              arrivals: tuple[Any, ...] = ()) -> Any:
        """The rows finished since the last drain (``Collector.drain``)."""
        return as_ledger(self._named("collector")).drain(final, unfinished, arrivals)

    async def wait_done(self, timeout_s: float) -> bool:
        """True once every submitted request has ended (within ``timeout_s`` wall s); raises
        the failure of a component of this actor."""
        self.raise_failure()
        try:
            done = as_ledger(self._named("collector")).done
            await asyncio.wait_for(done.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True

    async def status(self) -> dict[str, Any]:
        """The collector's snapshot (with the live picture) and emu time; raises the failure of
        a component of this actor (:class:`ComponentFailed`)."""
        self.raise_failure()
        collector = self._named("collector")
        return {"snapshot": collector.snapshot(), "now_s": collector.clock.now()}


class ArrivalsRole(_Hosted):
    """The load generator's (or the gateway's) calls."""

    def _arrivals_name(self) -> str:
        return "gateway" if "gateway" in self.components else "loadgen"

    def stop_arrivals(self) -> tuple[Any, ...]:
        """Submit nothing more (an interrupted run); the requests sent but not yet reported to
        the collector (none for the gateway: it reports each as it comes in)."""
        comp = self._named(self._arrivals_name())
        if isinstance(comp, Gateway):
            comp.close()
            return ()
        return as_arrivals(comp).stop_arrivals()

    async def last_arrival_s(self) -> float:
        """Emu time by which every planned arrival has happened."""
        comp = self._named(self._arrivals_name())
        if isinstance(comp, Gateway):
            return comp.arrivals_end_s()
        return float(as_arrivals(comp).arrivals_end_s())


class GatewayRole(_Hosted):
    """The gateway's calls from the HTTP side of ``disagg serve``."""

    def _gateway(self) -> Gateway:
        comp = self._named("gateway")
        assert isinstance(comp, Gateway), "this actor hosts no gateway"
        return comp

    async def submit(self, prompt_tokens: int, output_tokens: int, arrival_s: float,
                     pin: Pin | None = None) -> int:
        """See :meth:`Gateway.submit`."""
        return self._gateway().submit(prompt_tokens, output_tokens, arrival_s, pin)

    async def decode_leg(self, request_id: int, decode_unit: str, output_tokens: int) -> bool:
        """See :meth:`Gateway.decode_leg`."""
        return self._gateway().decode_leg(request_id, decode_unit, output_tokens)

    async def wait(self, request_id: int, version: int, from_index: int,
                   timeout_s: float) -> PlanUpdate:
        """See :meth:`Gateway.wait` (an async actor runs many of these at once)."""
        return await self._gateway().wait(request_id, version, from_index, timeout_s)

    async def cancel(self, request_id: int, reason: str) -> bool:
        """See :meth:`Gateway.cancel`."""
        return self._gateway().cancel(request_id, reason)

    async def outcomes(self, cursor: int) -> list[Outcome]:
        """See :meth:`Gateway.outcomes`."""
        return self._gateway().outcomes(cursor)

    async def close(self) -> int:
        """See :meth:`Gateway.close`."""
        return self._gateway().close()

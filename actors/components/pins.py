"""The units clients chose under ``disagg serve --per-unit``: a request that reached a unit's own
endpoint is served by that unit, whatever the router's policy would pick (the client's router
decided). A P/D request (vLLM's ``do_remote_decode``) has its KV wait at the router until its
decode leg names the decode unit and the output length (docs/serve.md, "Per-unit endpoints").
"""

from __future__ import annotations

import dataclasses

from disagg.cluster.messages import DecodeLeg, KvReady, Request, RequestArrived
from disagg.policies.base import Route


class PinnedRoutes:
    """Pinned units by request id, the KVs waiting for their decode leg, and the decode legs
    that came before their KV."""

    def __init__(self) -> None:
        self.prefill_pins: dict[int, str] = {}
        self.decode_pins: dict[int, str] = {}
        self.waits_for_leg: set[int] = set()  # P/D requests whose decode leg has not come
        self.parked: dict[int, KvReady] = {}  # their KVs, ready at the prefill unit
        self.legs: dict[int, DecodeLeg] = {}  # decode legs that came before the KV

    def arrived(self, msg: RequestArrived) -> None:
        """Remember what the arrival pins."""
        rid = msg.request.request_id
        if msg.prefill_unit:
            self.prefill_pins[rid] = msg.prefill_unit
        if msg.decode_unit:
            self.decode_pins[rid] = msg.decode_unit
        if msg.decode_leg:
            self.waits_for_leg.add(rid)

    def prefill(self, request: Request) -> Route | None:
        """The pinned prefill unit's route, if the client chose one."""
        unit = self.prefill_pins.pop(request.request_id, None)
        return None if unit is None else Route(unit)

    def decode(self, request: Request) -> Route | None:
        """The pinned decode unit's route, if the client chose one."""
        unit = self.decode_pins.pop(request.request_id, None)
        return None if unit is None else Route(unit)

    def kv_ready(self, msg: KvReady) -> KvReady:
        """``msg`` as it goes on: parked while its decode leg has not come, amended to the
        leg's output length if it has."""
        rid = msg.request.request_id
        if rid not in self.waits_for_leg:
            return msg
        leg = self.legs.pop(rid, None)
        if leg is None:
            self.parked[rid] = msg
            return msg
        return self._joined(msg, leg)

    def decode_leg(self, leg: DecodeLeg) -> KvReady | None:
        """The parked KV now ready to be placed (amended), or None (it has not come yet)."""
        msg = self.parked.pop(leg.request_id, None)
        if msg is None:
            self.legs[leg.request_id] = leg
            return None
        return self._joined(msg, leg)

    def _joined(self, msg: KvReady, leg: DecodeLeg) -> KvReady:
        rid = msg.request.request_id
        self.waits_for_leg.discard(rid)
        self.decode_pins[rid] = leg.decode_unit
        request = dataclasses.replace(msg.request, output_tokens=leg.output_tokens)
        records = tuple(request if isinstance(r, Request) else r for r in msg.records)
        return dataclasses.replace(msg, request=request, records=records)

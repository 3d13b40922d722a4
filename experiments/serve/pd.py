"""vLLM's prefill/decode (P/D) protocol on ``disagg serve --per-unit`` endpoints, as vllm-router
and llm-d drive NixlConnector workers (docs/serve.md, "Per-unit endpoints").

A request that reaches a unit's endpoint is served by that unit. The prefill leg goes to a
prefill unit with ``max_tokens`` 1 and ``kv_transfer_params: {"do_remote_decode": true}``: the
unit prefills, answers its one token and ``kv_transfer_params`` naming the modeled KV
(``remote_request_id`` is disagg's request id, ``remote_engine_id`` the prefill unit,
``kv_bytes`` the modeled bytes); the KV then waits at the router. The decode leg goes to a
decode unit with the client's ``max_tokens`` and those ``kv_transfer_params``: the KV moves
there over the emulated fabric and the unit decodes. Both legs are one emulated request, one
row of ``requests.parquet`` (its TTFT counts from the prefill leg's arrival).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disagg.actors.components.gateway import Pin
from disagg.experiments.serve.protocol import ApiError
from disagg.experiments.serve.units import UnitCache

PREFILL_LEG_TOKENS = 2  # a prefill leg's emulated output until its decode leg says (KV is kept)


@dataclass(frozen=True)
class Leg:
    """How a request that reached ``unit`` enters the cluster: a new request pinned by ``pin``
    (``submit_tokens`` output tokens), or the decode leg of request ``resume``."""

    pin: Pin
    submit_tokens: int
    resume: int | None = None
    prefill_leg: bool = False


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params = body.get("kv_transfer_params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "kv_transfer_params must be an object", param="kv_transfer_params")
    return params


def plan_leg(body: dict[str, Any], unit: UnitCache, output_tokens: int, n: int) -> Leg:
    """The leg of a request with ``body`` that reached ``unit``; raises :class:`ApiError`."""
    params = _params(body)
    if unit.kind != "decode":
        if params.get("do_remote_decode"):
            if unit.kind != "prefill":
                raise ApiError(400, f"{unit.unit} is a colocated unit: it decodes what it "
                               "prefills (no do_remote_decode)", param="kv_transfer_params")
            return Leg(Pin(prefill_unit=unit.unit, decode_leg=True), PREFILL_LEG_TOKENS,
                       prefill_leg=True)
        return Leg(Pin(prefill_unit=unit.unit), output_tokens)
    if not params.get("do_remote_prefill"):
        return Leg(Pin(decode_unit=unit.unit), output_tokens)
    rid = params.get("remote_request_id")
    if not isinstance(rid, str) or not rid.isdigit():
        raise ApiError(400, f"kv_transfer_params.remote_request_id must name a prefill leg's "
                       f"request (a number in a string), got {rid!r}", param="kv_transfer_params")
    if n != 1:
        raise ApiError(400, "a decode leg carries one KV: n must be 1", param="n")
    return Leg(Pin(decode_unit=unit.unit), output_tokens, resume=int(rid))


def prefill_leg_params(rid: int, unit: UnitCache, prompt_tokens: int,
                       kv_bytes_per_token: float, host: str, port: int) -> dict[str, Any]:
    """The ``kv_transfer_params`` a prefill leg answers (NixlConnector's keys, and the modeled
    KV): the decode leg hands them back to a decode unit."""
    blocks = -(-prompt_tokens // unit.block_size)
    return {"do_remote_prefill": True, "do_remote_decode": False,
            "remote_engine_id": unit.unit, "remote_request_id": str(rid),
            "remote_block_ids": list(range(blocks)), "remote_host": host, "remote_port": port,
            "tp_size": 1, "kv_bytes": prompt_tokens * kv_bytes_per_token}

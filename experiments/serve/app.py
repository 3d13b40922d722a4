"""The HTTP app of ``disagg serve`` (FastAPI on uvicorn): OpenAI-compatible completions and chat
completions, ``/v1/models``, ``/health`` and ``/metrics``, in front of a served cluster.

Each generation request is validated (:mod:`protocol`), submitted to the gateway at the emu time
it came in, and answered as its tokens come due (:mod:`pacing`): streamed as Server-Sent Events,
or whole once the last token is out. A request the cluster turns away answers 429 (admission
control) or 503 (no unit up) with the reason. Every connection is its own task, so a slow or
stalled client holds up only its own stream; its emulated request runs on regardless.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from disagg.experiments.serve.metrics import ServeMetrics
from disagg.experiments.serve.choices import Choices, unless_disconnected
from disagg.experiments.serve.pacing import Backend, Due, Ended
from disagg.experiments.serve.pd import Leg, plan_leg, prefill_leg_params
from disagg.experiments.serve.protocol import ApiError, Generation, Limits, parse_generation
from disagg.experiments.serve.responses import (
    DONE,
    error_event,
    full_response,
    role_chunk,
    token_chunk,
    usage_chunk,
)
from disagg.experiments.serve.sampling import apply_stops, check_sampling
from disagg.experiments.serve.units import UnitCache

DILATION_HEADER = "X-Disagg-Dilation"
REQUEST_ID_HEADER = "X-Disagg-Request-Id"
CLIENT_REQUEST_ID_HEADER = "X-Request-Id"  # the client's id: echoed, and names the response
CLIENT_CLOSED = 499  # nginx's "client closed request": nobody reads it
SLICE_TOKENS = 256  # most token events written at once


@dataclass(frozen=True)
class ServeSettings:
    """What the app enforces: the model and its limits, an optional API key, the body cap."""

    limits: Limits
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    units: tuple[UnitCache, ...] = ()  # each unit's cache facts (vllm:cache_config_info)
    kv_bytes_per_token: float = 0.0  # the model's KV per prompt token (P/D kv_transfer_params)


def rejection(status: str, reason: str) -> ApiError:
    """The HTTP error for a request the cluster did not complete before its first token."""
    if status == "rejected" and reason.startswith("no_") and reason.endswith("_up"):
        return ApiError(503, f"the cluster cannot serve this request: {reason}",
                        "ServiceUnavailableError")
    if status == "rejected":
        return ApiError(429, f"the cluster rejected this request: {reason}", "RateLimitError")
    if reason == "kv_exceeds_decode_capacity":
        return ApiError(400, f"the request does not fit the cluster: {reason}")
    return ApiError(503, f"the request failed in the cluster: {reason}", "ServiceUnavailableError")


async def _read_body(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", "RequestTooLargeError")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", "RequestTooLargeError")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def _slices(gen: Generation, due: Due, choice: int = 0) -> Iterator[str]:
    """The events of due tokens, at most ``SLICE_TOKENS`` per write, so that a long burst
    (the emulator ran late) leaves the event loop to other connections between writes."""
    for lo in range(due.start, due.start + due.count, SLICE_TOKENS):
        hi = min(lo + SLICE_TOKENS, due.start + due.count)
        yield "".join(token_chunk(gen, i, choice) for i in range(lo, hi))


async def _stream(gen: Generation, choices: Choices, firsts: list[Due | Ended]
                  ) -> AsyncIterator[str]:
    """The SSE body: (chat) a role chunk per choice, one chunk per token, usage, ``[DONE]``.
    A stream cut before its end (the client went away, or the server stops) cancels the
    choices still open in the cluster."""
    finished = False
    try:
        if gen.kind == "chat":
            for i in range(gen.n):
                yield role_chunk(gen, i)
        for i, first in enumerate(firsts):
            for part in _slices(gen, first, i):  # type: ignore[arg-type]
                yield part
        async for i, ev in choices.rest():
            if isinstance(ev, Ended):
                yield error_event(f"the request {ev.status} in the cluster: {ev.reason}",
                                  "ServiceUnavailableError", 503)
                yield DONE
                finished = True
                return
            for part in _slices(gen, ev, i):
                yield part
        if gen.include_usage:
            yield usage_chunk(gen)
        yield DONE
        finished = True
    finally:
        if not finished:
            choices.abandon()


async def _drain(choices: Choices) -> Ended | None:
    """Wait for every choice's last token; the first end without it, if one ended early."""
    async for _, ev in choices.rest():
        if isinstance(ev, Ended):
            return ev
    return None


class ApiCore:
    """The routes' bodies: one served cluster, its settings and its metrics (shared by the
    gateway's app and, with ``--per-unit``, every unit's app)."""

    def __init__(self, backend: Backend, settings: ServeSettings) -> None:
        self.backend, self.settings = backend, settings
        self.metrics = ServeMetrics(settings.limits.model, settings.limits.max_model_len,
                                    backend.dilation)
        self.metrics.set_units(settings.units)
        self.headers = {DILATION_HEADER: f"{backend.dilation:g}"}

    def authorized(self, request: Request) -> bool:
        key = self.settings.api_key
        return key is None or request.headers.get("authorization", "") == f"Bearer {key}"

    async def _enter(self, gen: Generation, leg: Leg | None, arrival_s: float) -> list[int]:
        """The cluster's request ids for ``gen``: ``n`` new ones (pinned to the units ``leg``
        names), or the prefill leg's whose decode leg this is."""
        if leg is not None and leg.resume is not None:
            if not await self.backend.decode_leg(leg.resume, leg.pin.decode_unit,
                                                 gen.output_tokens):
                raise ApiError(400, f"no prefill leg waits with remote_request_id "
                               f"{leg.resume}", param="kv_transfer_params")
            return [leg.resume]
        tokens = gen.output_tokens if leg is None else leg.submit_tokens
        pin = None if leg is None else leg.pin
        return [await self.backend.submit(gen.prompt_tokens, tokens, arrival_s, pin)
                for _ in range(gen.n)]

    async def generate(self, request: Request, kind: Literal["completion", "chat"],
                       unit: UnitCache | None = None) -> Response:
        """Validate, submit ``n`` requests at the arrival's emu time (served by ``unit`` if it
        came to a unit's endpoint), answer as the tokens come due; a client that disconnects
        first has its requests cancelled in the cluster."""
        arrival_s = self.backend.emu_now()
        if not self.authorized(request):
            return _error(ApiError(401, "invalid or missing API key", "AuthenticationError"))
        client_id = request.headers.get(CLIENT_REQUEST_ID_HEADER)
        try:
            gen, leg, rids = await self._admit(request, kind, unit, arrival_s, client_id)
        except ApiError as e:
            return _error(e)
        resumed = leg is not None and leg.resume is not None  # a decode leg: prompt counted
        choices = Choices(self.backend, rids, gen.output_tokens,
                          lambda p, d: self.metrics.released(p, d, gen.prompt_tokens, resumed),
                          None if resumed else arrival_s)
        present, firsts = await unless_disconnected(choices.firsts(), request.receive)
        if not present or firsts is None:
            choices.abandon()
            return Response(status_code=CLIENT_CLOSED)
        ended = [ev for ev in firsts if isinstance(ev, Ended)]
        if ended:
            choices.abandon("choice_failed")
            return _error(rejection(ended[0].status, ended[0].reason))
        headers = self._reply_headers(rids, client_id)
        if gen.stream and not (leg and leg.prefill_leg):  # a prefill leg answers whole
            return StreamingResponse(_stream(gen, choices, firsts),
                                     media_type="text/event-stream", headers=headers)
        present, end = await unless_disconnected(_drain(choices), request.receive)
        if not present:
            choices.abandon()
            return Response(status_code=CLIENT_CLOSED)
        if end is not None:
            choices.abandon("choice_failed")
            return _error(rejection(end.status, end.reason))
        return JSONResponse(self._whole_reply(request, gen, leg, unit, rids), headers=headers)

    async def _admit(self, request: Request, kind: Literal["completion", "chat"],
                     unit: UnitCache | None, arrival_s: float,
                     client_id: str | None) -> tuple[Generation, Leg | None, list[int]]:
        """Read and validate the body, plan its P/D leg if it came to a unit, and submit it at
        ``arrival_s`` (emu s): the generation, its leg and the cluster's request ids; raises
        :class:`ApiError`."""
        body = await _read_body(request, self.settings.max_body_bytes)
        check_sampling(body)
        gen = apply_stops(parse_generation(kind, body, self.settings.limits, client_id), body)
        leg = None if unit is None else plan_leg(body, unit, gen.output_tokens, gen.n)
        return gen, leg, await self._enter(gen, leg, arrival_s)

    def _reply_headers(self, rids: list[int], client_id: str | None) -> dict[str, str]:
        """The response's headers: the dilation, the cluster's request ids, the client's id."""
        headers = {**self.headers, REQUEST_ID_HEADER: ",".join(str(r) for r in rids)}
        if client_id:
            headers[CLIENT_REQUEST_ID_HEADER] = client_id
        return headers

    def _whole_reply(self, request: Request, gen: Generation, leg: Leg | None,
                     unit: UnitCache | None, rids: list[int]) -> dict[str, Any]:
        """The body of a whole (non-streamed) answer; a prefill leg's names where its KV waits."""
        reply = full_response(gen)
        if leg is not None and leg.prefill_leg and unit is not None:
            reply["kv_transfer_params"] = prefill_leg_params(
                rids[0], unit, gen.prompt_tokens, self.settings.kv_bytes_per_token,
                request.url.hostname or "", request.url.port or 0)
        return reply

    async def completions(self, request: Request) -> Response:
        return await self.generate(request, "completion")

    async def chat_completions(self, request: Request) -> Response:
        return await self.generate(request, "chat")

    async def models(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error(ApiError(401, "invalid or missing API key", "AuthenticationError"))
        name = self.settings.limits.model
        return JSONResponse({"object": "list", "data": [{
            "id": name, "object": "model", "created": int(time.time()), "owned_by": "disagg",
            "root": name, "parent": None, "max_model_len": self.settings.limits.max_model_len}]})

    async def health(self) -> Response:
        status = await self.backend.status()
        if status.get("errors"):
            return _error(ApiError(503, "; ".join(status["errors"][:3]),
                                   "ServiceUnavailableError"))
        return Response(status_code=200)

    async def prometheus(self) -> Response:
        self.metrics.add_outcomes(await self.backend.outcomes(self.metrics.cursor))
        self.metrics.set_live(await self.backend.status())
        return Response(self.metrics.exposition(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(backend: Backend, settings: ServeSettings, core: ApiCore | None = None
               ) -> FastAPI:
    """The FastAPI app serving ``backend`` (a :class:`~disagg.actors.engines.serve_engine.
    ServedCluster`, or a stand-in in tests), on ``core`` if given (shared with unit apps)."""
    app = FastAPI(title="disagg serve", docs_url=None, redoc_url=None, openapi_url=None)
    api = core or ApiCore(backend, settings)
    app.add_api_route("/v1/completions", api.completions, methods=["POST"])
    app.add_api_route("/v1/chat/completions", api.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", api.models, methods=["GET"])
    app.add_api_route("/health", api.health, methods=["GET"])
    app.add_api_route("/metrics", api.prometheus, methods=["GET"])
    return app

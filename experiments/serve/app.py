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
from disagg.experiments.serve.pacing import Backend, Due, Ended, TokenPacer
from disagg.experiments.serve.protocol import ApiError, Generation, Limits, parse_generation
from disagg.experiments.serve.responses import (
    DONE,
    error_event,
    full_response,
    role_chunk,
    token_chunk,
    usage_chunk,
)

DILATION_HEADER = "X-Disagg-Dilation"
REQUEST_ID_HEADER = "X-Disagg-Request-Id"
SLICE_TOKENS = 256  # most token events written at once


@dataclass(frozen=True)
class ServeSettings:
    """What the app enforces: the model and its limits, an optional API key, the body cap."""

    limits: Limits
    api_key: str | None = None
    max_body_bytes: int = 1 << 20


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


def _slices(gen: Generation, due: Due) -> Iterator[str]:
    """The events of due tokens, at most ``SLICE_TOKENS`` per write, so that a long burst
    (the emulator ran late) leaves the event loop to other connections between writes."""
    for lo in range(due.start, due.start + due.count, SLICE_TOKENS):
        hi = min(lo + SLICE_TOKENS, due.start + due.count)
        yield "".join(token_chunk(gen, i) for i in range(lo, hi))


async def _stream(gen: Generation, first: Due, events: AsyncIterator[Due | Ended]
                  ) -> AsyncIterator[str]:
    """The SSE body: (chat) a role chunk, one chunk per token, usage, ``[DONE]``."""
    if gen.kind == "chat":
        yield role_chunk(gen)
    for part in _slices(gen, first):
        yield part
    async for ev in events:
        if isinstance(ev, Ended):
            yield error_event(f"the request {ev.status} in the cluster: {ev.reason}",
                              "ServiceUnavailableError", 503)
            yield DONE
            return
        for part in _slices(gen, ev):
            yield part
    if gen.include_usage:
        yield usage_chunk(gen)
    yield DONE


class _Api:
    """The routes' bodies: one served cluster, its settings and its metrics."""

    def __init__(self, backend: Backend, settings: ServeSettings) -> None:
        self.backend, self.settings = backend, settings
        self.metrics = ServeMetrics(settings.limits.model, settings.limits.max_model_len,
                                    backend.dilation)
        self.headers = {DILATION_HEADER: f"{backend.dilation:g}"}

    def authorized(self, request: Request) -> bool:
        key = self.settings.api_key
        return key is None or request.headers.get("authorization", "") == f"Bearer {key}"

    async def generate(self, request: Request, kind: Literal["completion", "chat"]) -> Response:
        """Validate, submit at the arrival's emu time, answer as the tokens come due."""
        arrival_s = self.backend.emu_now()
        if not self.authorized(request):
            return _error(ApiError(401, "invalid or missing API key", "AuthenticationError"))
        try:
            body = await _read_body(request, self.settings.max_body_bytes)
            gen = parse_generation(kind, body, self.settings.limits)
        except ApiError as e:
            return _error(e)
        rid = await self.backend.submit(gen.prompt_tokens, gen.output_tokens, arrival_s)
        events = TokenPacer(self.backend, rid, gen.output_tokens).events().__aiter__()
        first = await events.__anext__()
        if isinstance(first, Ended):
            return _error(rejection(first.status, first.reason))
        headers = {**self.headers, REQUEST_ID_HEADER: str(rid)}
        if gen.stream:
            return StreamingResponse(_stream(gen, first, events), media_type="text/event-stream",
                                     headers=headers)
        async for ev in events:
            if isinstance(ev, Ended):
                return _error(rejection(ev.status, ev.reason))
        return JSONResponse(full_response(gen), headers=headers)

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


def create_app(backend: Backend, settings: ServeSettings) -> FastAPI:
    """The FastAPI app serving ``backend`` (a :class:`~disagg.actors.engines.serve_engine.
    ServedCluster`, or a stand-in in tests)."""
    app = FastAPI(title="disagg serve", docs_url=None, redoc_url=None, openapi_url=None)
    api = _Api(backend, settings)
    app.add_api_route("/v1/completions", api.completions, methods=["POST"])
    app.add_api_route("/v1/chat/completions", api.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", api.models, methods=["GET"])
    app.add_api_route("/health", api.health, methods=["GET"])
    app.add_api_route("/metrics", api.prometheus, methods=["GET"])
    return app

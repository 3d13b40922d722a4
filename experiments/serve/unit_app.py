"""``disagg serve --per-unit``: one HTTP app per prefill, decode and colocated unit, each with
vLLM's API, ``/health`` and ``/metrics`` as one vLLM worker has them, so that a P/D router
(vllm-router, llm-d) given the units' URLs drives the emulated cluster (docs/serve.md).

Every app shares the cluster, its settings and its metrics with the gateway's app
(:func:`~disagg.experiments.serve.app.create_app`); a unit's ``/metrics`` shows the series of
its own ``engine`` label (and the cluster-wide ones without one), its ``/health`` answers 503
once it, or the cluster, is lost.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from disagg.experiments.serve.app import ApiCore
from disagg.experiments.serve.units import UnitCache


def unit_exposition(text: bytes, unit: str) -> bytes:
    """The Prometheus text without the samples of other units' ``engine`` labels."""
    mine = f'engine="{unit}"'.encode()
    keep = [line for line in text.split(b"\n")
            if b'engine="' not in line or mine in line]
    return b"\n".join(keep)


class _UnitRoutes:
    """The routes of one unit's endpoint."""

    def __init__(self, core: ApiCore, unit: UnitCache) -> None:
        self.core, self.unit = core, unit

    async def completions(self, request: Request) -> Response:
        return await self.core.generate(request, "completion", self.unit)

    async def chat_completions(self, request: Request) -> Response:
        return await self.core.generate(request, "chat", self.unit)

    async def health(self) -> Response:
        status = await self.core.backend.status()
        mine = [e for e in status.get("errors", [])
                if f"unit {self.unit.unit} " in e or not e.startswith("unit ")]
        if mine:
            return JSONResponse({"error": {"message": "; ".join(mine[:3]), "code": 503,
                                           "type": "ServiceUnavailableError", "param": None}},
                                status_code=503)
        return Response(status_code=200)

    async def prometheus(self) -> Response:
        full = await self.core.prometheus()
        return Response(unit_exposition(bytes(full.body), self.unit.unit),
                        media_type=full.media_type)


def create_unit_app(core: ApiCore, unit: UnitCache) -> FastAPI:
    """The app of ``unit``'s own endpoint, on the shared ``core``."""
    app = FastAPI(title=f"disagg serve: {unit.unit}", docs_url=None, redoc_url=None,
                  openapi_url=None)
    routes = _UnitRoutes(core, unit)
    app.add_api_route("/v1/completions", routes.completions, methods=["POST"])
    app.add_api_route("/v1/chat/completions", routes.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", core.models, methods=["GET"])
    app.add_api_route("/health", routes.health, methods=["GET"])
    app.add_api_route("/metrics", routes.prometheus, methods=["GET"])
    return app

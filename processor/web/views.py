"""HTTP endpoints on the worker's web port: /metrics, /health and /ready."""

from __future__ import annotations

from typing import Any

from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processor.stream.app import Runtime
from processor.web import api, status


def install(rt: Runtime) -> None:
    """Register the views on the app's web server."""
    app = rt.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # Faust's helpers cannot set a charset; its web driver is aiohttp, so answer with that.
        body = generate_latest(rt.metrics.registry)
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        # Alive as long as the event loop answers; no personal data here.
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = rt.ready()
        return web.json({"ready": ok}, status=200 if ok else 503)

    api.install(rt)
    status.install(rt)

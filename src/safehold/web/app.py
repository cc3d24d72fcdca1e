"""The FastAPI application served by ``safehold serve``: a thin shell over the library.

Routes: the ``/v1`` API (scan, lookup, banks, keys; :mod:`safehold.web.api`), the
operations endpoints (``/healthz``, ``/readyz``, ``/metrics``), the OpenAPI 3.1
document at ``/openapi.json`` with its docs page at ``/docs`` (Swagger UI served from
this process, no CDN), and an overview page at ``/`` for the operator.

At start-up the process loads its index replica (in the background when
``background_load``: ``/readyz`` answers 503 until it is loaded) and follows the
change log until shutdown. Every error is problem+json (:mod:`safehold.web.problems`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safehold import __version__
from safehold.errors import TooLarge
from safehold.logs import configure_logging
from safehold.store.db import Database
from safehold.web import problems
from safehold.web.api import banks as banks_api
from safehold.web.api import keys as keys_api
from safehold.web.api import ops as ops_api
from safehold.web.api import scan as scan_api
from safehold.web.metrics import MetricsMiddleware
from safehold.web.service import Service

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
MAX_JSON_BODY = 64 * 1024 * 1024
"""Bodies of every route but the streamed uploads are refused beyond this."""
STREAMED = ("/v1/scan", "/entries")

log = structlog.get_logger("safehold.web")

DESCRIPTION = """
Hash matching for child safety. Send an upload to `POST /v1/scan` (or hashes computed
on the device to `POST /v1/lookup`) and get the matches and a decision back.

Every `/v1` route needs an API key (`Authorization: Bearer shk_...`, made with
`safehold key create`) with the scope the route names: `scan`, `banks:read`,
`banks:write` or `admin`. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    db: Database | None = None,
    *,
    background_load: bool = False,
    redis_url: str | None = None,
) -> FastAPI:
    """The application. ``db`` defaults to ``SAFEHOLD_DATABASE_URL`` (or the SQLite file)."""
    configure_logging()
    database = db or Database()
    svc = Service.open(database, redis_url=redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background_load:
            import threading

            threading.Thread(target=_start, args=(svc,), name="safehold-load", daemon=True).start()
        else:
            _start(svc)
        try:
            yield
        finally:
            svc.replica.stop()
            log.info("stopped")

    app = FastAPI(
        title="safehold",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=problems.responses(500),
    )
    app.state.service = svc
    app.state.db = database
    problems.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)

    def _gauges() -> None:
        st = svc.replica.status()
        svc.metrics.index_entries.set(st.entries)
        svc.metrics.change_id.set(st.change_id)
        svc.metrics.lag_seconds.set(st.lag_seconds if st.lag_seconds is not None else -1)

    svc.metrics.on_collect(_gauges)

    for module in (ops_api, scan_api, banks_api, keys_api):
        app.include_router(module.router)
    _add_schemas(app, banks_api.EntryIn, banks_api.EntriesIn)

    assets = resources.files("fastapi_swagger") / "resources"
    app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="safehold API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": True},
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        local = _is_loopback(request)
        return TEMPLATES.TemplateResponse(
            request,
            "banks.html",
            {
                "banks": svc.banks.list() if local else [],
                "local": local,
                "version": __version__,
                "database": database.backend,
            },
        )

    return app


def _add_schemas(app: FastAPI, *models: Any) -> None:
    """Put models that only hand-written request bodies refer to into the components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schemas[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _start(svc: Service) -> None:
    try:
        svc.replica.start()
    except Exception:
        log.exception("the index could not be loaded")


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")


class BodyLimit:
    """Refuse request bodies over :data:`MAX_JSON_BODY` (uploads stream with their own limit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).endswith(STREAMED):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > MAX_JSON_BODY:
                await _too_large(scope, receive, send)
                return
        seen = 0

        async def _receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_JSON_BODY:
                    raise TooLarge(f"the request body is larger than {MAX_JSON_BODY} bytes")
            return message

        await self.app(scope, _receive, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = problems.problem(
        413, TooLarge.code, f"the request body is larger than {MAX_JSON_BODY} bytes"
    )
    await response(scope, receive, send)


def app_from_env() -> Any:
    """The app for ``uvicorn --factory safehold.web.app:app_from_env`` (several workers)."""
    return create_app(background_load=True)

"""The FastAPI application served by ``safehold serve``: a thin shell over the library.

Routes: the ``/v1`` API (scan, lookup, banks, keys; :mod:`safehold.web.api`), the
operations endpoints (``/healthz``, ``/readyz``, ``/metrics``), the OpenAPI 3.1
document at ``/openapi.json`` with its docs page at ``/docs`` (Swagger UI served from
this process, no CDN), an overview page at ``/`` for the operator, the review console
at ``/ui/`` and the public reporting portal at ``/report`` (:mod:`safehold.web.portal`).

At start-up the process loads its index replica (in the background when
``background_load``: ``/readyz`` answers 503 until it is loaded) and follows the
change log until shutdown. Every error is problem+json (:mod:`safehold.web.problems`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safehold import __version__
from safehold.access.keys import KEY_FORMAT
from safehold.errors import TooLarge, Unauthorized
from safehold.logs import configure_logging
from safehold.store.db import Database
from safehold.web import problems
from safehold.web.api import banks as banks_api
from safehold.web.api import keys as keys_api
from safehold.web.api import ops as ops_api
from safehold.web.api import reports as reports_api
from safehold.web.api import rules as rules_api
from safehold.web.api import scan as scan_api
from safehold.web.api import webhooks as webhooks_api
from safehold.web.metrics import MetricsMiddleware
from safehold.web.portal import install as install_portal
from safehold.web.service import Service
from safehold.web.ui import routes as ui_routes

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
MAX_JSON_BODY = 64 * 1024 * 1024
"""Bodies of every route but the streamed uploads are refused beyond this."""
STREAMED = ("/v1/scan", "/entries", "/report", "/report/status/add")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")

log = structlog.get_logger("safehold.web")

DESCRIPTION = """
Hash matching for child safety. Send an upload to `POST /v1/scan` and get the matches
and the decision of your rules back (`block`, `hold` or `allow`; the rules also open
review cases and send webhooks), or match hashes computed on the device with
`POST /v1/lookup`. Rules live under `/v1/rules`, webhook deliveries under
`/v1/webhooks`; people review cases in the console at `/ui/`.

Every `/v1` route needs an API key (`Authorization: Bearer shk_...`, made with
`safehold key create`) with the scope the route names: `scan`, `banks:read`,
`banks:write` or `admin`. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    db: Database | None = None,
    *,
    background_load: bool = False,
    redis_url: str | None = None,
    queue_url: str | None = None,
    worker: bool = True,
) -> FastAPI:
    """The application. ``db`` defaults to ``SAFEHOLD_DATABASE_URL`` (or the SQLite file)."""
    configure_logging()
    database = db or Database()
    svc = Service.open(database, redis_url=redis_url, queue_url=queue_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background_load:
            import threading

            threading.Thread(target=_start, args=(svc,), name="safehold-load", daemon=True).start()
        else:
            _start(svc)
        svc.start_background(worker=worker)
        try:
            yield
        finally:
            try:
                svc.stop_background()
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
    app.add_exception_handler(405, _method_not_allowed)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequireBearer, api=app)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)

    def _gauges() -> None:
        st = svc.replica.status()
        svc.metrics.index_entries.set(st.entries)
        svc.metrics.change_id.set(st.change_id)
        svc.metrics.lag_seconds.set(st.lag_seconds if st.lag_seconds is not None else -1)

    svc.metrics.on_collect(_gauges)

    for module in (ops_api, scan_api, banks_api, keys_api, rules_api, webhooks_api, reports_api):
        app.include_router(module.router)
    app.include_router(ui_routes.router)
    app.mount(
        "/ui/static",
        StaticFiles(directory=str(Path(__file__).parent / "ui" / "static")),
        name="ui-static",
    )
    install_portal(app)  # the public reporting portal: /report and /report/static
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
            # Any body may be unreadable (400: not UTF-8 where JSON is expected) or too
            # large (413: BodyLimit, or the upload limit of the streamed routes).
            for item in spec.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        for status, doc in problems.responses(400, 413).items():
                            operation.setdefault("responses", {}).setdefault(str(status), doc)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 whose ``Allow`` lists every method of the path (Starlette names only those of
    the first route whose path matched)."""
    routes = request.app.router.routes
    allow = ", ".join(
        method
        for method in HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ) or (getattr(exc, "headers", None) or {}).get("Allow", "")
    return problems.problem(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed on this path; use {allow or 'another path'}",
        headers={"Allow": allow} if allow else None,
    )


def _start(svc: Service) -> None:
    try:
        svc.replica.start()
    except Exception:
        log.exception("the index could not be loaded")


def _is_loopback(request: Request) -> bool:
    """A request from this machine, not relayed by a proxy (which would add its header)."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")


class RequireBearer:
    """Answer 401 at once to a ``/v1`` request without a well-formed bearer key, before
    its body is read (the route's dependency still verifies the key and its scope).

    Only requests that match an operation of the OpenAPI document are checked; an
    unknown path or method goes on to the router's 404/405."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._table: list[tuple[re.Pattern[str], frozenset[str], str]] | None = None

    def _operation(self, method: str, path: str) -> str | None:
        if self._table is None:
            table = []
            for template, item in self.api.openapi().get("paths", {}).items():
                if template.startswith("/v1/"):
                    regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                    table.append(
                        (re.compile(regex + "$"), frozenset(m.upper() for m in item), template)
                    )
            self._table = table
        for pattern, methods, template in self._table:
            if method in methods and pattern.match(path):
                return template
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/v1/"):
            template = self._operation(str(scope.get("method", "")), str(scope["path"]))
            if template is None:
                await self.app(scope, receive, send)
                return
            scope["safehold.route"] = template  # for the metrics of an early answer
            auth = b""
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    auth = value
            scheme, _, token = auth.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or KEY_FORMAT.fullmatch(token.strip()) is None:
                detail = (
                    "this route needs an API key: send 'Authorization: Bearer shk_...' "
                    "(create one with `safehold key create`)"
                    if not auth
                    else "the API key is malformed: send 'Authorization: Bearer shk_...' with "
                    "a key made by `safehold key create`"
                )
                response = problems.problem(
                    401,
                    Unauthorized.code,
                    detail,
                    headers={"WWW-Authenticate": 'Bearer realm="safehold"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    """The app for ``uvicorn --factory safehold.web.app:app_from_env`` (several workers);
    ``SAFEHOLD_WORKER=0`` leaves the jobs to ``safehold worker`` processes."""
    worker = os.environ.get("SAFEHOLD_WORKER", "1").strip().lower() not in ("0", "false", "no")
    return create_app(background_load=True, worker=worker)

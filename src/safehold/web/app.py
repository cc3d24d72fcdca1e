"""The FastAPI application served by ``safehold serve``.

For now: liveness (``/healthz``), the list of banks as JSON (``/v1/banks``) and as a
page (``/``). The scanning API builds on this.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from safehold import __version__
from safehold.banks.repository import Banks
from safehold.errors import SafeholdError
from safehold.store.db import Database

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def create_app(db: Database | None = None) -> FastAPI:
    database = db or Database()
    banks = Banks(database)
    app = FastAPI(title="safehold", version=__version__, docs_url="/docs")
    app.state.db = database

    @app.exception_handler(SafeholdError)
    async def _problem(request: Request, exc: SafeholdError) -> JSONResponse:
        return JSONResponse(
            {
                "type": f"https://safehold.dev/problems/{exc.code}",
                "title": exc.code.replace("_", " "),
                "status": exc.status,
                "detail": exc.message,
            },
            status_code=exc.status,
            media_type="application/problem+json",
        )

    @app.exception_handler(HTTPException)
    async def _http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        """Unknown paths, wrong methods ...: problem+json too (RFC 9457, ``about:blank``)."""
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
        return JSONResponse(
            {
                "type": "about:blank",
                "title": title,
                "status": exc.status_code,
                "detail": str(exc.detail),
            },
            status_code=exc.status_code,
            media_type="application/problem+json",
            headers=exc.headers,
        )

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    @app.get("/v1/banks", tags=["banks"])
    def list_banks() -> dict[str, Any]:
        """Every bank with its settings and entry counts per signal type."""
        return {"banks": [b.to_dict() for b in banks.list()]}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "banks.html",
            {"banks": banks.list(), "version": __version__, "database": database.describe()},
        )

    return app

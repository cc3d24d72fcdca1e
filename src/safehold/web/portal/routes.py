"""The public reporting portal under ``/report``: server-rendered pages, no login.

* ``GET /report`` — the report form; ``POST /report`` — the receipt (number and
  secret, shown once) or the form again with its errors.
* ``GET/POST /report/status`` — a receipt's status, the hotline's messages;
  ``POST /report/status/add`` adds information, ``POST /report/status/withdraw``
  withdraws (after a confirmation step). Stateless: the number and the secret travel
  as hidden fields, there is no session.
* ``GET /report/hash`` — hashes made on the device (``POST /report/hash``: JSON of
  hashes only, never the pictures).
* ``GET /report/help`` — help and support (:mod:`safehold.web.portal.help`).

Every route is a thin shell over :mod:`safehold.intake` (``Reports``,
``ConsentHashes``). Every response carries a strict Content-Security-Policy and
``Referrer-Policy: no-referrer``; pages are ``Cache-Control: no-store``. Nothing here
stores or logs a client address or user agent: the address is only turned into a
keyed hash for the in-memory rate limits (:mod:`safehold.web.portal.protection`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from safehold.banks.entries import DEFAULT_TENANT, check_tenant
from safehold.errors import (
    Conflict,
    InvalidValue,
    MediaError,
    NotFound,
    RateLimited,
    SafeholdError,
    TooLarge,
    Unauthorized,
)
from safehold.intake import NewReport, ReportFile
from safehold.intake.categories import (
    AGE_BANDS,
    CATEGORIES,
    GENDERS,
    RELATIONS,
    countries,
)
from safehold.intake.consent import KINDS, MAX_ITEMS
from safehold.intake.model import PUBLIC_OUTCOMES, PUBLIC_STATES, ReportStatus
from safehold.intake.receipts import Receipt, normalize_number, normalize_secret
from safehold.intake.reports import MAX_FILES
from safehold.signals.pdq import MIN_QUALITY
from safehold.web.portal import checks, protection
from safehold.web.portal.forms import MalformedForm, PortalForm, read_form
from safehold.web.portal.help import HelpPages
from safehold.web.portal.i18n import Language, Languages
from safehold.web.service import Service
from safehold.web.upload import max_upload_bytes

log = logging.getLogger("safehold.portal")

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; "
    "img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
MAX_HASH_JSON = 8 * 1024 * 1024
MAX_JSON_DEPTH = 8
OWN_IMAGES = "own_images"


def secure(response: Response, *, no_store: bool = True) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


def portal_tenant() -> str:
    """The tenant whose cases portal reports open (``SAFEHOLD_PORTAL_TENANT``)."""
    return check_tenant(os.environ.get("SAFEHOLD_PORTAL_TENANT", "").strip() or DEFAULT_TENANT)


class Portal:
    """What the portal holds in one process: languages, limits, help, templates."""

    def __init__(self) -> None:
        self.languages = Languages()
        self.limits = protection.Limits()
        self.pow = protection.ProofOfWork()
        self.help = HelpPages()
        self.tenant = portal_tenant()
        self.site_name = os.environ.get("SAFEHOLD_OPERATOR_NAME", "").strip() or "safehold"
        self._envs: dict[str, Environment] = {}

    def env(self, lang: Language) -> Environment:
        env = self._envs.get(lang.code)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(str(TEMPLATES_DIR)),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(  # type: ignore[attr-defined]
                lang.translations, newstyle=True
            )
            self._envs[lang.code] = env
        return env


def portal(request: Request) -> Portal:
    return request.app.state.portal  # type: ignore[no-any-return]


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def language(request: Request, form: PortalForm | None = None) -> Language:
    asked = form.get("lang") if form is not None and form.get("lang") else None
    return portal(request).languages.negotiate(
        asked or request.query_params.get("lang"), request.headers.get("accept-language")
    )


def link(lang: Language, path: str, **params: str) -> str:
    """A portal link that keeps the language."""
    return f"{path}?{urlencode({'lang': lang.code, **params})}"


# --------------------------------------------------------------------------- rendering


def render(
    request: Request,
    lang: Language,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    p = portal(request)
    svc = service(request)
    token = protection.csrf_token(request)
    upload_limit = max_upload_bytes(svc.limits)

    def url(path: str, **params: str) -> str:
        return link(lang, path, **params)

    ctx: dict[str, Any] = {
        "lang": lang,
        "languages": p.languages.all,
        "csrf": token,
        "pow": p.pow.issue(),
        "site_name": p.site_name,
        "path": request.url.path,
        "url": url,
        "switch_form": None,
        "switch_path": switch_path(request.url.path),
        "switch_new_tab": False,
        "errors": {},
        "notice": None,
        "max_upload": checks.size_text(upload_limit),
        "max_upload_bytes": upload_limit,
        "max_files": MAX_FILES,
    }
    ctx.update(context or {})
    html = p.env(lang).get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.cookies.get(protection.CSRF_COOKIE) != token:
        protection.set_csrf_cookie(response, request, token)
    return response


PAGES = ("/report", "/report/status", "/report/hash", "/report/help")


def switch_path(path: str) -> str:
    """The page a language link leads to: this one, or the page a form came from."""
    if path in PAGES:
        return path
    return "/report/status" if path.startswith("/report/status") else "/report"


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def error_message(lang: Language, exc: SafeholdError) -> tuple[str, str]:
    """``(title, sentence)`` for an error, in the reader's language."""
    _ = lang.gettext
    if isinstance(exc, RateLimited):
        minutes = _minutes(exc.retry_after)
        if "secret" in exc.message:
            return _("Please wait"), lang.ngettext(
                "There were too many wrong secrets for this report number. Wait about "
                "%(minutes)s minute and try again, carefully.",
                "There were too many wrong secrets for this report number. Wait about "
                "%(minutes)s minutes and try again, carefully.",
                minutes,
            ) % {"minutes": minutes}
        return _("Please wait"), lang.ngettext(
            "Too many requests came from your network in a short time. Nothing you typed was "
            "saved. Wait about %(minutes)s minute and try again.",
            "Too many requests came from your network in a short time. Nothing you typed was "
            "saved. Wait about %(minutes)s minutes and try again.",
            minutes,
        ) % {"minutes": minutes}
    if isinstance(exc, protection.CsrfRefused):
        return _("Please reload the page"), _(
            "This form expired or was not sent from this site. Reload the page and try again. "
            "Your browser must accept the one cookie this site uses to protect its forms."
        )
    if isinstance(exc, protection.PowRefused):
        return _("Please try again"), _(
            "Your browser's check did not finish or has expired. Make sure JavaScript is on, "
            "wait for the check to finish and send the form again."
        )
    if isinstance(exc, TooLarge):
        return _("Too large"), _(
            "What you sent is too large: the files together may be at most %(limit)s. Send "
            "fewer or smaller files, or give the web address where you saw them."
        ) % {"limit": checks.size_text(int(exc.details.get("limit") or 0))}
    if isinstance(exc, MalformedForm):
        return _("The form could not be read"), _(
            "The form could not be read. Go back, reload the page and try again."
        )
    if isinstance(exc, NotFound):
        return _("Page not found"), _("There is no such page. Start again from the report page.")
    if isinstance(exc, Unauthorized):
        return _("Wrong receipt"), _(
            "The report number or the secret is wrong. Check both on your receipt (letters and "
            "digits; dashes and spaces do not matter)."
        )
    if isinstance(exc, Conflict):
        return _("Not possible"), _(
            "This cannot be done for this report any more (it may have been withdrawn)."
        )
    if isinstance(exc, MethodNotAllowed):
        return _("Not possible"), _(
            "This page cannot be used like that. Start again from the report page."
        )
    return _("Something went wrong"), _(
        "Your request could not be handled. Nothing was saved. Go back and try again."
    )


def error_page(request: Request, exc: SafeholdError, lang: Language | None = None) -> Response:
    lang = lang or language(request)
    title, message = error_message(lang, exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status == 405 and exc.details.get("allow"):
        headers["Allow"] = str(exc.details["allow"])
    return render(
        request,
        lang,
        "error.html",
        {"title": title, "message": message, "status": exc.status},
        status=exc.status,
        headers=headers,
    )


def crash_page(request: Request) -> Response:
    lang = language(request)
    _ = lang.gettext
    return render(
        request,
        lang,
        "error.html",
        {
            "title": _("Something went wrong"),
            "message": _(
                "Something went wrong on our side and nothing was saved. Please try again in a "
                "few minutes."
            ),
            "status": 500,
        },
        status=500,
    )


class PortalRoute(APIRoute):
    """Portal responses: strict headers, and errors as readable pages in the reader's
    language (never problem+json, never a stack trace)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except SafeholdError as exc:
                response = error_page(request, exc)
            except RequestValidationError:
                response = error_page(request, MalformedForm("the request could not be read"))
            except HTTPException as exc:
                if exc.status_code >= 500:
                    raise
                response = error_page(request, MalformedForm(str(exc.detail)))
            except Exception:
                log.exception("portal page failed", extra={"route": self.path})
                response = crash_page(request)
            return secure(response)

        return handler


router = APIRouter(prefix="/report", include_in_schema=False, route_class=PortalRoute)
"""The portal's pages."""
fallback = APIRouter(include_in_schema=False, route_class=PortalRoute)
"""Unknown ``/report`` paths and methods: readable 404 and 405 pages."""


# --------------------------------------------------------------------------- choices


def category_choices(lang: Language) -> list[dict[str, str]]:
    _ = lang.gettext
    return [{"key": c.key, "title": _(c.title), "hint": _(c.hint)} for c in CATEGORIES.values()]


def choices(lang: Language, answers: dict[str, str]) -> list[tuple[str, str]]:
    return [(key, lang.gettext(text)) for key, text in answers.items()]


def form_context(lang: Language, values: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "categories": category_choices(lang),
        "age_bands": choices(lang, AGE_BANDS),
        "genders": choices(lang, GENDERS),
        "relations": choices(lang, RELATIONS),
        "countries": lang.countries(countries()),
        "values": {name: "" for name in checks.REPORT_FIELDS} | (values or {}),
    }


def switch_links(lang: Language, path: str, languages: list[Language]) -> list[dict[str, str]]:
    return [
        {"code": x.code, "tag": x.tag, "name": x.name, "href": link(x, path)} for x in languages
    ]


# --------------------------------------------------------------------------- start / report


@router.get("")
def start(request: Request) -> Response:
    lang = language(request)
    return render(request, lang, "report.html", form_context(lang))


def _report_of(form: PortalForm, values: dict[str, str], lang: Language) -> NewReport:
    demographics = {k: values[k] for k in ("age_band", "gender", "country", "relation")}
    contact = {"name": values["name"], "email": values["email"], "phone": values["phone"]}
    return NewReport(
        category=values["category"],
        urls=values["urls"],
        platform=values["platform"],
        username=values["username"],
        description=values["description"],
        demographics={k: v for k, v in demographics.items() if v},
        contact={k: v for k, v in contact.items() if v} or None,
        language=lang.code,
        files=[ReportFile(f.path, f.name) for f in form.files_of("files")],
        source="public_report",
    )


def _submit(svc: Service, report: NewReport, tenant: str) -> Receipt:
    if report.files:
        with svc.hashing:  # bounded concurrency: each decode may use hundreds of MB
            return svc.reports.submit(report, tenant=tenant)
    return svc.reports.submit(report, tenant=tenant)


@router.post("")
async def submit(request: Request) -> Response:
    p = portal(request)
    svc = service(request)
    p.limits.hit(request, "report")
    form = await read_form(request, max_file_bytes=max_upload_bytes(svc.limits), tmpdir=svc.tmpdir)
    try:
        lang = language(request, form)
        _ = lang.gettext
        checked = checks.check_report(lang, form, svc.limits)

        def again(errors: dict[str, str], status: int) -> Response:
            if form.files_of("files") and "files" not in errors:
                errors = {
                    **errors,
                    "files": _(
                        "For your safety, files are not kept when the form has an error: "
                        "choose them again."
                    ),
                }
                errors = {k: errors[k] for k in checks.REPORT_FIELDS if k in errors}
            return render(
                request,
                lang,
                "report.html",
                {**form_context(lang, checked.values), "errors": errors},
                status=status,
            )

        try:
            protection.check_csrf(request, form.get("csrf"))
        except protection.CsrfRefused as e:
            return again({"": error_message(lang, e)[1]}, 403)
        try:
            p.pow.verify(form.get("pow_challenge"), form.get("pow_nonce"))
        except protection.PowRefused as e:
            return again({"": error_message(lang, e)[1]}, 403)
        if checked.errors:
            return again(checked.errors, 422)
        report = _report_of(form, checked.values, lang)
        try:
            receipt = await run_in_threadpool(_submit, svc, report, p.tenant)
        except MediaError as e:
            return again({"files": checks.media_message(lang, e, "")}, 422)
        except InvalidValue:
            log.warning("a portal report passed the page's checks but not the library's")
            return again(
                {"": _("The report could not be sent as it is. Check it and try again.")}, 422
            )
        return render(
            request,
            lang,
            "receipt.html",
            {
                "receipt": receipt,
                "kind": "report",
                "switch_new_tab": True,
                "has_contact": bool(report.contact),
            },
        )
    finally:
        form.discard()


# --------------------------------------------------------------------------- status


def _status_context(
    lang: Language,
    status: ReportStatus,
    number: str,
    secret: str,
    languages: list[Language],
) -> dict[str, Any]:
    _ = lang.gettext
    # carried on as hidden fields in the forms of the page: in their clean form
    number = status.display_number
    secret = normalize_secret(secret) or ""
    category = CATEGORIES.get(status.category)
    if status.kind == "hashes":
        title = (
            _("Hashes of pictures or videos of me taken when I was under 18")
            if status.category.endswith("minor")
            else _("Hashes of pictures or videos of me")
        )
    else:
        title = _(category.title) if category else status.category
    return {
        "status": status,
        "state_text": _(PUBLIC_STATES.get(status.state, status.state)),
        "outcome_text": _(PUBLIC_OUTCOMES[status.outcome])
        if status.outcome in PUBLIC_OUTCOMES
        else "",
        "category_title": title,
        "number": number,
        "secret": secret,
        "switch_form": {
            "action": "/report/status",
            "fields": {"number": number, "secret": secret},
            "languages": languages,
        },
        "values": {"text": "", "urls": ""},
    }


def _receipt_fields(form: PortalForm) -> tuple[str, str]:
    return form.get("number")[:64], form.get("secret")[:128]


def _checked_number(number: str) -> str | None:
    return normalize_number(number)


async def _open_status(
    request: Request, lang: Language, number: str, secret: str
) -> ReportStatus | Response:
    """The status for a receipt, or the receipt form again with the reason."""
    p = portal(request)
    svc = service(request)
    _ = lang.gettext
    stored = _checked_number(number)
    if stored is None or not secret.strip():
        errors = {}
        if stored is None:
            errors["number"] = _(
                "This is not a report number. It looks like R-7KQ2-M9XD (or H-... for hashes)."
            )
        if not secret.strip():
            errors["secret"] = _("Type the secret from your receipt.")
        return render(
            request,
            lang,
            "status_form.html",
            {"errors": errors, "values": {"number": checks.shown(number)}},
            status=422,
        )
    p.limits.check_secret(stored)
    try:
        return await run_in_threadpool(svc.reports.status, stored, secret)
    except Unauthorized as e:
        p.limits.wrong_secret(stored)
        return render(
            request,
            lang,
            "status_form.html",
            {"errors": {"": error_message(lang, e)[1]}, "values": {"number": checks.shown(number)}},
            status=401,
        )


@router.get("/status")
def status_form(request: Request) -> Response:
    lang = language(request)
    return render(request, lang, "status_form.html", {"values": {"number": ""}})


@router.post("/status")
async def status_page(request: Request) -> Response:
    p = portal(request)
    svc = service(request)
    p.limits.hit(request, "status")
    form = await read_form(request, max_file_bytes=0, tmpdir=svc.tmpdir)
    try:
        lang = language(request, form)
        number, secret = _receipt_fields(form)
        try:
            protection.check_csrf(request, form.get("csrf"))
        except protection.CsrfRefused as e:
            return render(
                request,
                lang,
                "status_form.html",
                {
                    "errors": {"": error_message(lang, e)[1]},
                    "values": {"number": checks.shown(number)},
                },
                status=403,
            )
        found = await _open_status(request, lang, number, secret)
        if isinstance(found, Response):
            return found
        return render(
            request,
            lang,
            "status.html",
            _status_context(lang, found, number, secret, p.languages.all),
        )
    finally:
        form.discard()


@router.post("/status/add")
async def add_information(request: Request) -> Response:
    p = portal(request)
    svc = service(request)
    p.limits.hit(request, "status")
    form = await read_form(request, max_file_bytes=max_upload_bytes(svc.limits), tmpdir=svc.tmpdir)
    try:
        lang = language(request, form)
        _ = lang.gettext
        number, secret = _receipt_fields(form)
        protection.check_csrf(request, form.get("csrf"))
        checked = checks.check_addition(lang, form, svc.limits)
        found = await _open_status(request, lang, number, secret)
        if isinstance(found, Response):
            return found
        ctx = _status_context(lang, found, number, secret, p.languages.all)
        if not found.can_add:
            return render(
                request,
                lang,
                "status.html",
                {**ctx, "notice": _("Information can no longer be added to this report.")},
                status=409,
            )
        if checked.errors:
            if form.files_of("files") and "files" not in checked.errors:
                checked.errors["files"] = _(
                    "For your safety, files are not kept when the form has an error: choose "
                    "them again."
                )
            return render(
                request,
                lang,
                "status.html",
                {**ctx, "errors": checked.errors, "values": checked.values},
                status=422,
            )
        files = [ReportFile(f.path, f.name) for f in form.files_of("files")]

        def add() -> ReportStatus:
            if files:
                with svc.hashing:
                    return svc.reports.add_info(
                        number,
                        secret,
                        text=checked.values["text"],
                        urls=checked.values["urls"],
                        files=files,
                    )
            return svc.reports.add_info(
                number, secret, text=checked.values["text"], urls=checked.values["urls"]
            )

        try:
            status = await run_in_threadpool(add)
        except MediaError as e:
            return render(
                request,
                lang,
                "status.html",
                {
                    **ctx,
                    "errors": {"files": checks.media_message(lang, e, "")},
                    "values": checked.values,
                },
                status=422,
            )
        return render(
            request,
            lang,
            "status.html",
            {
                **_status_context(lang, status, number, secret, p.languages.all),
                "notice": _("Thank you. Your information was added to the report."),
            },
        )
    finally:
        form.discard()


@router.post("/status/withdraw")
async def withdraw(request: Request) -> Response:
    p = portal(request)
    svc = service(request)
    p.limits.hit(request, "status")
    form = await read_form(request, max_file_bytes=0, tmpdir=svc.tmpdir)
    try:
        lang = language(request, form)
        _ = lang.gettext
        number, secret = _receipt_fields(form)
        protection.check_csrf(request, form.get("csrf"))
        found = await _open_status(request, lang, number, secret)
        if isinstance(found, Response):
            return found
        ctx = _status_context(lang, found, number, secret, p.languages.all)
        if not found.can_withdraw:
            return render(
                request,
                lang,
                "status.html",
                {**ctx, "notice": _("This was already withdrawn.")},
            )
        if form.get("confirm") != "yes":
            return render(request, lang, "withdraw.html", ctx)
        status = await run_in_threadpool(svc.reports.withdraw, number, secret)
        notice = (
            _("Your hashes were withdrawn. Services no longer block these pictures.")
            if status.kind == "hashes"
            else _(
                "Your report was withdrawn. Your contact details, if you gave any, were deleted."
            )
        )
        return render(
            request,
            lang,
            "status.html",
            {**_status_context(lang, status, number, secret, p.languages.all), "notice": notice},
        )
    finally:
        form.discard()


# --------------------------------------------------------------------------- on-device hashes


def hash_strings(lang: Language) -> dict[str, str]:
    """What the hashing page's script says, in the reader's language (``{name}``-style
    placeholders are filled in by the script)."""
    _ = lang.gettext
    return {
        "hashing": _("Making the hash of {name}… {percent}"),
        "hashed": _("Ready. Check the hashes below, then send them."),
        "failed": _(
            "{name} could not be hashed. It may not be a picture or video this page can read."
        ),
        "consent": _("Tick both boxes and choose how old you were first."),
        "nofiles": _("Choose at least one picture or video first."),
        "toomany": _("Choose at most {max} files at a time."),
        "sending": _("Sending the hashes…"),
        "sendfailed": _("The hashes could not be sent. Check your connection and try again."),
        "checking": _("Your browser is doing a small check. This can take a few seconds…"),
        "picture": _("Picture"),
        "video": _("Video"),
        "frames": _("{count} frames"),
        "quality": _("quality {quality}"),
    }


@router.get("/hash")
def hash_page(request: Request) -> Response:
    lang = language(request)
    return render(
        request, lang, "hash.html", {"max_items": MAX_ITEMS, "strings": hash_strings(lang)}
    )


def _json_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return secure(JSONResponse({"error": message}, status_code=status, headers=headers))


def _depth(value: object, limit: int) -> bool:
    """Whether ``value`` nests no deeper than ``limit`` lists/objects."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _hash_notes(lang: Language, items: list[Any]) -> list[str]:
    """Translated notes for pictures too plain for a PDQ hash (their MD5 still counts)."""
    _ = lang.gettext
    notes = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            continue
        if "pdq" in item and isinstance(item.get("quality"), int):
            plain = item["quality"] < MIN_QUALITY
        elif isinstance(item.get("vpdq"), list):
            plain = all(
                isinstance(f, dict)
                and isinstance(f.get("quality"), int)
                and f["quality"] < MIN_QUALITY
                for f in item["vpdq"]
            )
        else:
            plain = False
        if plain:
            notes.append(
                _(
                    "File %(number)s is very plain, so only its exact copy can be blocked "
                    "(not changed copies)."
                )
                % {"number": n}
            )
    return notes


@router.post("/hash")
async def submit_hashes(request: Request) -> Response:
    """JSON in, JSON out (the page's script renders the receipt)."""
    p = portal(request)
    svc = service(request)
    lang = language(request)
    _ = lang.gettext
    try:
        p.limits.hit(request, "hash")
    except RateLimited as e:
        return _json_error(
            error_message(lang, e)[1], 429, {"Retry-After": str(max(1, math.ceil(e.retry_after)))}
        )
    try:
        protection.check_csrf(request, request.headers.get(protection.CSRF_HEADER))
    except protection.CsrfRefused as e:
        return _json_error(error_message(lang, e)[1], 403)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        return _json_error(_("Send the hashes from the page (as JSON)."), 415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_HASH_JSON:
        return _json_error(_("Too many hashes at once: send fewer files."), 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_HASH_JSON:
            return _json_error(_("Too many hashes at once: send fewer files."), 413)
    bad = _("The hashes could not be read. Reload the page and try again.")
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _json_error(bad, 400)
    if not isinstance(data, dict) or not _depth(data, MAX_JSON_DEPTH):
        return _json_error(bad, 400)
    lang = p.languages.find(data.get("lang")) or lang
    _ = lang.gettext
    pow_raw = data.get("pow")
    pow_: dict[str, Any] = pow_raw if isinstance(pow_raw, dict) else {}
    try:
        p.pow.verify(pow_.get("challenge"), pow_.get("nonce"))
    except protection.PowRefused as e:
        return _json_error(error_message(lang, e)[1], 403)
    kind = data.get("kind")
    if data.get("consent") is not True or kind not in KINDS:
        return _json_error(
            _(
                "Confirm that the pictures or videos show you, say how old you were, and agree "
                "that the hashes are shared."
            ),
            422,
        )
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return _json_error(_("Choose at least one picture or video first."), 422)
    if len(items) > MAX_ITEMS:
        return _json_error(
            _("You chose %(count)s files: send at most %(max)s at a time.")
            % {"count": len(items), "max": MAX_ITEMS},
            422,
        )
    try:
        result = await run_in_threadpool(
            svc.consent.submit, items, kind=str(kind), tenant=p.tenant, language=lang.code
        )
    except InvalidValue:
        return _json_error(bad, 422)
    except SafeholdError:
        log.exception("on-device hashes could not be stored")
        return _json_error(_("The hashes could not be stored. Nothing was saved. Try again."), 503)
    return secure(
        JSONResponse(
            {
                "number": result.receipt.display_number,
                "secret": result.receipt.secret,
                "hashes": result.added,
                "notes": _hash_notes(lang, items),
                "status_url": link(lang, "/report/status"),
            }
        )
    )


# --------------------------------------------------------------------------- help


@router.get("/help")
def help_page(request: Request) -> Response:
    lang = language(request)
    content = portal(request).help.content(lang.code)

    def t(text: str) -> str:
        return lang.gettext(text) if content.translated and text else text

    return render(request, lang, "help.html", {"help": content, "t": t})


# --------------------------------------------------------------------------- fallback


class MethodNotAllowed(SafeholdError):
    code = "method_not_allowed"
    status = 405


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _not_found_or_method(request: Request) -> SafeholdError:
    allowed = sorted(
        {
            method
            for route in router.routes
            for method in METHODS
            if route.matches({**request.scope, "method": method})[0] is Match.FULL
        }
    )
    if allowed:
        return MethodNotAllowed("this page cannot be used like that", allow=", ".join(allowed))
    return NotFound("no such page")


@fallback.api_route("/report", methods=["PUT", "PATCH", "DELETE", "OPTIONS"])
@fallback.api_route("/report/{rest:path}", methods=METHODS)
def unknown(request: Request, rest: str = "") -> Response:
    raise _not_found_or_method(request)


class PortalStatic(StaticFiles):
    """The portal's scripts and styles, with the portal's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            response = Response("not found\n", status_code=exc.status_code, media_type="text/plain")
            return secure(response)
        response.headers.setdefault("Cache-Control", "no-cache")
        return secure(response, no_store=False)


def install(app: FastAPI) -> None:
    """Add the portal to the app: pages, its static files, 404/405 pages."""
    import mimetypes

    mimetypes.add_type("text/javascript", ".js")
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("application/wasm", ".wasm")
    app.state.portal = Portal()
    app.include_router(router)
    app.mount("/report/static", PortalStatic(directory=str(STATIC_DIR)), name="portal-static")
    app.include_router(fallback)

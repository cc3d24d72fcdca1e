"""The public reporting portal ``/report`` through the ASGI app (TestClient).

A report with synthetic pictures, its receipt, the status page, adding information
and withdrawing it; CSRF, rate limits and the wrong-secret throttle; proof-of-work on
and off; Malay and a language an operator adds with a ``.po`` file; the help page
from YAML; a reported file that matches a bank; on-device hashes; and that no client
address or user agent is stored or logged. On SQLite and on PostgreSQL where the
database matters.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, func, select
from tests.intake_helpers import cheap_hashing
from tests.media_factory import encode_image, photo_like, write_image

from safehold.hashing import hash_file
from safehold.store import Database
from safehold.store.models import Case, CaseItem, Media, Report
from safehold.web.app import create_app
from safehold.web.portal.i18n import BUILTIN_DIR
from safehold.web.portal.protection import CSRF_COOKIE, leading_zero_bits
from safehold.web.portal.routes import CSP

BASE = "http://127.0.0.1"
NUMBER = re.compile(r'<code class="big" id="receipt-number"[^>]*>([^<]+)</code>')
SECRET = re.compile(r'<code class="big" id="receipt-secret"[^>]*>([^<]+)</code>')


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@dataclass
class Site:
    app: Any
    db: Database
    tmp: Path
    client: TestClient

    @property
    def svc(self) -> Any:
        return self.app.state.service

    def other_client(self, host: str) -> TestClient:
        """Another browser, from another address (its own cookies)."""
        return TestClient(self.app, base_url=BASE, client=(host, 40000))

    def csrf(self, client: TestClient | None = None, path: str = "/report") -> str:
        r = (client or self.client).get(path)
        assert r.status_code == 200, r.text
        found = re.search(r'(?:name="csrf" value|data-csrf)="([^"]+)"', r.text)
        assert found, r.text[:500]
        return found.group(1)

    def report(
        self,
        client: TestClient | None = None,
        files: list[tuple[str, bytes]] | None = None,
        csrf: str | None = None,
        query: str = "",
        **fields: str,
    ) -> Any:
        c = client or self.client
        data = {"csrf": csrf if csrf is not None else self.csrf(c), "lang": "en", **fields}
        parts = [("files", (name, body, "application/octet-stream")) for name, body in files or []]
        if not parts:  # a browser sends the empty file input too
            parts = [("files", ("", b"", "application/octet-stream"))]
        return c.post("/report" + query, data=data, files=parts)

    def status(self, number: str, secret: str, client: TestClient | None = None, **kw: str) -> Any:
        c = client or self.client
        data = {"csrf": self.csrf(c, "/report/status"), "number": number, "secret": secret}
        return c.post("/report/status", data={**data, **kw})

    def count(self, model: Any) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


def receipt_of(response: Any) -> tuple[str, str]:
    assert response.status_code == 200, response.text[:3000]
    number, secret = NUMBER.search(response.text), SECRET.search(response.text)
    assert number and secret, response.text[:3000]
    return number.group(1), secret.group(1)


def make_site(
    url: str, tmp_path: Path, *, demo: bool = False, client: tuple[str, int] | None = None
) -> Iterator[Site]:
    db = Database(url)
    if demo:
        from safehold.demo import create_demo

        create_demo(db, tmp_path / "demo")
    app = create_app(db, queue_url="memory://?immediate=1", worker=False)
    with TestClient(app, base_url=BASE, client=client or ("192.0.2.10", 50000)) as c:
        yield Site(app, db, tmp_path, c)
    db.close()


@pytest.fixture()
def site(sqlite_url: str, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(sqlite_url, tmp_path)


@pytest.fixture()
def site_db(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """The portal on SQLite and on PostgreSQL."""
    yield from make_site(db_url, tmp_path)


def picture(seed: int, fmt: str = "jpeg") -> bytes:
    return encode_image(photo_like(320, 240, seed=seed), fmt)


# --------------------------------------------------------------------------- pages


def test_every_page_has_the_strict_headers_and_only_the_csrf_cookie(site: Site) -> None:
    for path in ("/report", "/report/status", "/report/hash", "/report/help"):
        r = site.other_client("192.0.2.50").get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        cookies = r.headers.get_list("set-cookie")
        assert len(cookies) == 1, cookies
        cookie = cookies[0].lower()
        assert cookie.startswith(CSRF_COOKIE + "=")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/report" in cookie
        assert re.search(r'<html lang="en" dir="ltr">', r.text)
        assert 'class="skip" href="#main"' in r.text
        # no third-party request: every src/href is on this site (or a plain link out)
        for attr in re.findall(r'(?:src)="([^"]+)"', r.text):
            assert attr.startswith("/report/static/"), attr
        for attr in re.findall(r'<link[^>]+href="([^"]+)"', r.text):
            assert attr.startswith("/report/static/"), attr
    for path in ("/report/static/portal.css", "/report/static/portal.js"):
        r = site.client.get(path)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert (
        site.client.get("/report/static/portal.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )


def test_the_start_page_states_what_is_stored_and_offers_every_category(site: Site) -> None:
    from safehold.intake.categories import CATEGORIES

    text = site.client.get("/report").text
    assert "Anonymous by default" in text
    assert "IP address" in text and "user agent" in text and "no account" in text
    for c in CATEGORIES.values():
        assert f'value="{c.key}"' in text
        assert html.escape(c.title, quote=False) in text
    assert text.count("<details") == 2 and '<details class="group" open' not in text
    assert '<option value="MY">Malaysia</option>' in text
    for href in ("/report/status?lang=en", "/report/hash?lang=en", "/report/help?lang=en"):
        assert f'href="{href}"' in text
    assert "<fieldset" in text and "<legend>" in text
    assert 'enctype="multipart/form-data"' in text


def test_unknown_pages_and_methods_are_readable_pages(site: Site) -> None:
    r = site.client.get("/report/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Page not found" in r.text and r.headers["content-security-policy"] == CSP
    r = site.client.put("/report")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    assert r.headers["content-type"].startswith("text/html")
    r = site.client.get("/report/static/no-such-file.js")
    assert r.status_code == 404 and r.headers["content-security-policy"] == CSP


# --------------------------------------------------------------------------- the flow


def test_report_receipt_status_add_information_and_withdraw(site_db: Site) -> None:
    site = site_db
    r = site.report(
        files=[("one.jpg", picture(1)), ("two.png", picture(2, "png"))],
        category="grooming",
        urls="https://social.example/u/someone\nhttps://social.example/p/1",
        platform="Example Social",
        username="@someone",
        description="Asks children in my class for photos.",
        relation="parent",
        age_band="13_15",
        country="MY",
        email="parent@example.org",
    )
    number, secret = receipt_of(r)
    assert re.fullmatch(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}", number)
    assert re.fullmatch(r"([0-9A-Z]{4}-){3}[0-9A-Z]{4}", secret)
    assert r.headers["cache-control"] == "no-store"
    assert "shown only this once" in r.text and 'data-copy="receipt-secret"' in r.text
    info = site.svc.reports.by_number(number, "default")
    assert info.files == 2 and len(info.urls) == 2 and info.category == "grooming"
    assert info.demographics == {"relation": "parent", "age_band": "13_15", "country": "MY"}
    assert info.contact == {"email": "parent@example.org"} and info.language == "en"

    # the status page: state in plain words, counts, the receipt carried as hidden fields
    r = site.status(number.lower().replace("-", " "), secret.lower())
    assert r.status_code == 200, r.text[:2000]
    assert "Received: we will look at your report soon." in r.text
    assert "No messages yet." in r.text and r.headers["cache-control"] == "no-store"
    assert f'name="number" value="{number}"' in r.text
    assert f'name="secret" value="{secret}"' in r.text
    assert secret not in r.text.split("<main", 1)[1].split('name="secret"', 1)[0]

    # add information: text, a URL and a file
    data = {
        "csrf": site.csrf(),
        "lang": "en",
        "number": number,
        "secret": secret,
        "text": "The account also wrote to my son's friend.",
        "urls": "https://social.example/p/2",
    }
    r = site.client.post(
        "/report/status/add", data=data, files=[("files", ("three.jpg", picture(3), "image/jpeg"))]
    )
    assert r.status_code == 200, r.text[:2000]
    assert "Your information was added" in r.text and "From you" in r.text
    assert "my son&#39;s friend" in r.text
    info = site.svc.reports.by_number(number, "default")
    assert info.files == 3 and len(info.urls) == 3

    # withdraw: a confirmation first, then withdrawn; contact details erased
    form = {"csrf": site.csrf(), "number": number, "secret": secret}
    r = site.client.post("/report/status/withdraw", data=form)
    assert r.status_code == 200 and "This cannot be undone." in r.text
    assert site.svc.reports.by_number(number, "default").withdrawn_at is None
    r = site.client.post("/report/status/withdraw", data={**form, "confirm": "yes"})
    assert r.status_code == 200 and "Your report was withdrawn" in r.text
    assert "Withdrawn: you withdrew this report." in r.text
    info = site.svc.reports.by_number(number, "default")
    assert info.withdrawn_at is not None and info.contact is None
    assert "Add information" not in r.text  # nothing more to add to a withdrawn report


def test_messages_from_the_hotline_are_shown_isolated(site: Site) -> None:
    from safehold.access.users import Users

    number, secret = receipt_of(site.report(category="other", description="something"))
    rita = Users(site.db, site.svc.audit).create("rita", "synthetic-pass-1", "reviewer")
    info = site.svc.reports.by_number(number, "default")
    site.svc.reports.message(info.id, rita, "Thank you.\nشكرا <b>bold</b>")
    r = site.status(number, secret)
    assert "From us" in r.text
    assert (
        '<div class="message-body" dir="auto">Thank you.\nشكرا &lt;b&gt;bold&lt;/b&gt;</div>'
        in (r.text)
    )
    assert "rita" not in r.text  # staff names are never shown


def test_validation_errors_keep_the_input_and_point_at_the_fields(site: Site) -> None:
    before = site.count(Report)
    r = site.report(
        urls="not-a-url",
        username="@someone",
        description="keep this text",
        email="not-an-email",
    )
    assert r.status_code == 422
    assert 'id="error-summary"' in r.text and "autofocus" in r.text
    assert "Choose what happened." in r.text
    assert 'href="#category-child_sexual_abuse"' in r.text
    assert 'href="#urls"' in r.text and 'href="#email"' in r.text
    assert 'aria-describedby="urls-hint urls-error" aria-invalid="true"' in r.text
    assert 'id="email-error"' in r.text and 'aria-describedby="email-error"' in r.text
    assert ">keep this text</textarea>" in r.text and 'value="@someone"' in r.text
    assert '<details class="group" open>' in r.text  # the contact section with the error
    assert site.count(Report) == before


def test_an_empty_report_is_refused_with_a_plain_message(site: Site) -> None:
    r = site.report(category="other")
    assert r.status_code == 422 and "The report is empty" in r.text
    assert site.count(Report) == 0


def test_files_are_asked_for_again_after_an_error(site: Site) -> None:
    r = site.report(files=[("a.jpg", picture(5))], category="nope")
    assert r.status_code == 422 and "choose them again" in r.text
    assert site.count(Report) == 0 and site.count(Media) == 0


def test_a_report_with_a_file_that_matches_a_bank_gets_its_labels(
    sqlite_url: str, tmp_path: Path
) -> None:
    for s in make_site(sqlite_url, tmp_path, demo=True):
        query = tmp_path / "demo" / "queries" / "demo-01-recompressed.jpg"
        expected = {label for e in s.svc.banks.entries("demo") for label in e.labels}
        number, _secret = receipt_of(
            s.report(files=[("seen.jpg", query.read_bytes())], category="other", description="x")
        )
        info = s.svc.reports.by_number(number, "default")
        with s.db.session() as sess:
            case = sess.get(Case, info.case_id)
            assert case is not None
            items = list(sess.scalars(select(CaseItem).where(CaseItem.report_id == info.id)))
        assert items and items[0].matches and items[0].matches[0]["bank"] == "demo"
        assert set(items[0].matches[0]["labels"]) & set(case.labels or [])
        assert set(case.labels or []) & expected


# --------------------------------------------------------------------------- protection


def test_csrf_is_required_on_every_post(site: Site) -> None:
    stranger = site.other_client("192.0.2.77")  # no cookie yet
    r = stranger.post("/report", data={"csrf": "x" * 32, "category": "other", "description": "x"})
    assert r.status_code == 403 and "Reload the page" in r.text
    token = site.csrf()
    r = site.report(csrf=token[:-2] + "zz", category="other", description="x")
    assert r.status_code == 403 and "x</textarea>" in r.text  # the input is kept
    r = site.client.post("/report/status", data={"number": "R-0000-0000", "secret": "x"})
    assert r.status_code == 403
    r = site.client.post("/report/status/withdraw", data={"number": "R-0000-0000"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    r = site.client.post("/report/hash", json={"kind": "adult", "items": []})
    assert r.status_code == 403 and "error" in r.json()
    assert site.count(Report) == 0


def test_rate_limits_per_address_with_a_429_page(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_PORTAL_RATE", "report=2/10m,status=3/1h")
    for s in make_site(sqlite_url, tmp_path):
        for _ in range(2):
            receipt_of(s.report(category="other", description="x"))
        r = s.report(category="other", description="x")
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 600
        assert "Please wait" in r.text and "Nothing you typed was saved" in r.text
        assert r.headers["content-security-policy"] == CSP
        # another address has its own bucket
        other = s.other_client("198.51.100.4")
        receipt_of(s.report(client=other, category="other", description="x"))
        for _ in range(3):
            assert s.status("R-0000-0000", "0000-0000-0000-0000").status_code == 401
        assert s.status("R-0000-0000", "0000-0000-0000-0000").status_code == 429
        # IPv6 clients count per /64
        a, b = s.other_client("2001:db8::1"), s.other_client("2001:db8::2")
        receipt_of(s.report(client=a, category="other", description="x"))
        receipt_of(s.report(client=b, category="other", description="x"))
        assert s.report(client=a, category="other", description="x").status_code == 429


def test_wrong_secrets_for_one_number_are_throttled(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_PORTAL_RATE", "secret=2/15m")
    for s in make_site(sqlite_url, tmp_path):
        number, secret = receipt_of(s.report(category="other", description="x"))
        wrong = "0000-0000-0000-0000"
        r = s.status(number, wrong)
        assert r.status_code == 401 and "The report number or the secret is wrong" in r.text
        assert s.status(number, wrong).status_code == 401
        r = s.status(number, secret, client=s.other_client("203.0.113.5"))
        assert r.status_code == 429 and "too many wrong secrets" in r.text
        assert int(r.headers["retry-after"]) > 0


def test_bad_rate_settings_fail_at_start(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.errors import InvalidValue

    monkeypatch.setenv("SAFEHOLD_PORTAL_RATE", "reports=ten")
    with pytest.raises(InvalidValue, match="SAFEHOLD_PORTAL_RATE"):
        create_app(Database(sqlite_url), queue_url="memory://?immediate=1", worker=False)


def solve(challenge: str, bits: int) -> str:
    nonce = 0
    while True:
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if leading_zero_bits(digest) >= bits:
            return str(nonce)
        nonce += 1


def test_proof_of_work_off_by_default(site: Site) -> None:
    text = site.client.get("/report").text
    assert "pow_challenge" not in text and "data-pow" not in text
    receipt_of(site.report(category="other", description="x"))


def test_proof_of_work_when_turned_on(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_PORTAL_POW_BITS", "8")
    for s in make_site(sqlite_url, tmp_path):
        text = s.client.get("/report").text
        found = re.search(r'name="pow_challenge" value="([^"]+)"', text)
        assert found and 'data-pow-bits="8"' in text and "Turn on JavaScript" in text
        challenge = found.group(1)
        r = s.report(category="other", description="x", pow_challenge=challenge)
        assert r.status_code == 403 and "check did not finish" in r.text
        nonce = solve(challenge, 8)
        receipt_of(
            s.report(category="other", description="x", pow_challenge=challenge, pow_nonce=nonce)
        )
        r = s.report(category="other", description="x", pow_challenge=challenge, pow_nonce=nonce)
        assert r.status_code == 403  # a challenge is used once
        forged = challenge.rsplit(".", 1)[0] + "." + "0" * 32
        r = s.report(
            category="other", description="x", pow_challenge=forged, pow_nonce=solve(forged, 8)
        )
        assert r.status_code == 403
        # the hashing page sends the solution in its JSON
        page = s.client.get("/report/hash").text
        ch = re.search(r'data-pow-challenge="([^"]+)"', page)
        csrf = re.search(r'data-csrf="([^"]+)"', page)
        assert ch and csrf
        body = {"kind": "adult", "consent": True, "items": [{"md5": "0" * 32}]}
        headers = {"X-CSRF-Token": csrf.group(1)}
        assert s.client.post("/report/hash", json=body, headers=headers).status_code == 403
        body["pow"] = {"challenge": ch.group(1), "nonce": solve(ch.group(1), 8)}
        r = s.client.post("/report/hash", json=body, headers=headers)
        assert r.status_code == 422  # past the check: the items themselves are incomplete
    assert leading_zero_bits(b"\x00\x0f") == 12 and leading_zero_bits(b"\x80") == 0


# --------------------------------------------------------------------------- on-device hashes


def test_hashes_from_the_device_get_a_receipt_and_can_be_withdrawn(
    site_db: Site, tmp_path: Path
) -> None:
    site = site_db
    path = write_image(tmp_path / "mine.png", photo_like(320, 240, seed=11), "png")
    hashes = hash_file(path)
    page = site.client.get("/report/hash")
    assert "The picture never leaves your device" in page.text
    assert '<script type="module" src="/report/static/portal-hash.js"></script>' in page.text
    strings = re.search(
        r'<script type="application/json" id="portal-strings">(.*?)</script>', page.text, re.S
    )
    assert strings and "{name}" in json.loads(strings.group(1))["hashing"]
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token
    body = {
        "kind": "adult",
        "consent": True,
        "lang": "en",
        "items": [{"md5": hashes.md5, "pdq": hashes.pdq, "quality": hashes.pdq_quality}],
    }
    r = site.client.post("/report/hash", json=body, headers={"X-CSRF-Token": token.group(1)})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["number"].startswith("H-") and answer["hashes"] == 2
    assert r.headers["cache-control"] == "no-store"
    entries = {(e.signal_type, e.value) for e in site.svc.banks.entries("consent")}
    assert entries == {("md5", hashes.md5), ("pdq", hashes.pdq)}
    r = site.status(answer["number"], answer["secret"])
    assert "Active: your hashes are in the list" in r.text and "Withdraw the hashes" in r.text
    assert "Add information" not in r.text
    form = {"csrf": site.csrf(), "number": answer["number"], "secret": answer["secret"]}
    r = site.client.post("/report/status/withdraw", data={**form, "confirm": "yes"})
    assert r.status_code == 200 and "Your hashes were withdrawn" in r.text
    assert site.svc.banks.entries("consent") == []


def test_hash_submissions_need_consent_and_say_when_a_picture_is_plain(site: Site) -> None:
    token = site.csrf(path="/report/hash")
    headers = {"X-CSRF-Token": token}
    item = {"md5": "a" * 32, "pdq": "f" * 64, "quality": 10}
    r = site.client.post("/report/hash", json={"kind": "adult", "items": [item]}, headers=headers)
    assert r.status_code == 422 and "Confirm" in r.json()["error"]
    r = site.client.post(
        "/report/hash", json={"kind": "x", "consent": True, "items": [item]}, headers=headers
    )
    assert r.status_code == 422
    r = site.client.post(
        "/report/hash",
        json={"kind": "minor", "consent": True, "items": [item], "lang": "ms"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["hashes"] == 1
    assert "sangat ringkas" in r.json()["notes"][0]  # in the page's language


# --------------------------------------------------------------------------- languages


def test_malay_everywhere(site: Site) -> None:
    r = site.client.get("/report?lang=ms")
    assert '<html lang="ms" dir="ltr">' in r.text
    assert "Buat laporan" in r.text and "Tanpa nama secara lalai" in r.text
    assert "Gambar atau video seksual kanak-kanak" in r.text
    assert '<option value="DE">Jerman</option>' in r.text  # country names in Malay
    assert 'name="lang" value="ms"' in r.text and 'href="/report/status?lang=ms"' in r.text
    assert 'href="/report?lang=en" lang="en" hreflang="en">English</a>' in r.text
    r = site.client.get("/report", headers={"Accept-Language": "fr;q=0.9, ms-MY;q=0.8, en;q=0.5"})
    assert '<html lang="ms"' in r.text
    r = site.client.get("/report?lang=zz", headers={"Accept-Language": "de"})
    assert '<html lang="en"' in r.text
    r = site.client.get("/report?lang=en", headers={"Accept-Language": "ms"})
    assert '<html lang="en"' in r.text  # an explicit choice wins
    number, secret = receipt_of(site.report(category="other", description="x", lang="ms"))
    r = site.status(number, secret, lang="ms")
    assert "Diterima: kami akan meneliti laporan anda tidak lama lagi." in r.text
    assert (
        "Laporan anda" in r.text and site.svc.reports.by_number(number, "default").language == "ms"
    )
    # the language switcher on the status page re-posts the receipt
    assert 'action="/report/status?lang=en"' in r.text
    r = site.report(category="other", lang="ms")
    assert "Laporan ini kosong" in r.text
    for path in ("/report/help", "/report/hash", "/report/status", "/report/nope"):
        assert '<html lang="ms"' in site.client.get(path + "?lang=ms").text


def _extracted_ids() -> set[str | tuple[str, str]]:
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parents[1]
    method_map = [
        ("src/safehold/intake/categories.py", "python"),
        ("src/safehold/intake/model.py", "python"),
        ("src/safehold/web/portal/**.py", "python"),
        ("src/safehold/web/portal/templates/**.html", "jinja2"),
    ]
    options = {
        "src/safehold/web/portal/templates/**.html": {
            "extensions": "jinja2.ext.i18n",
            "trim_blocks": "true",
            "lstrip_blocks": "true",
        }
    }
    out: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root), method_map, options
    ):
        out.add(message if isinstance(message, str) else (message[0], message[1]))
    return out


def test_every_message_has_a_malay_translation() -> None:
    from babel.messages.pofile import read_po

    extracted = _extracted_ids()
    assert "Sexual images or videos of a child" in extracted  # from categories.py (N_)
    assert "Received: we will look at your report soon." in extracted  # from model.py
    with (BUILTIN_DIR / "ms" / "LC_MESSAGES" / "portal.po").open("rb") as f:
        catalog = read_po(f, locale="ms")
    with (BUILTIN_DIR / "portal.pot").open("rb") as f:
        template = read_po(f)
    ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in template if m.id}
    assert ids == extracted, "run `make messages`: the .pot is out of date"
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            missing.append(message.id)
    translated = {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}
    assert not missing and not (extracted - translated), (missing, extracted - translated)


def test_an_operator_adds_a_language_with_a_po_file(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locales = tmp_path / "locales"
    for code, pairs in {
        "fr": {"Make a report": "Faire un signalement", "Check a report": "Suivre"},
        "ar": {"Make a report": "تقديم بلاغ"},
        "ms": {"Make a report": "Laporkan sekarang"},  # an override of a shipped string
        "not a language": {"Make a report": "x"},
    }.items():
        po = locales / code / "LC_MESSAGES" / "portal.po"
        po.parent.mkdir(parents=True)
        body = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        body += "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in pairs.items())
        body += '#, fuzzy\nmsgid "Help and support"\nmsgstr "Aide (fuzzy)"\n'
        po.write_text(body, encoding="utf-8")
    broken = locales / "de" / "LC_MESSAGES" / "portal.po"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b'msgid "x"\nmsgstr \xff\xfe"broken\n')
    monkeypatch.setenv("SAFEHOLD_LOCALE_DIR", str(locales))
    for s in make_site(sqlite_url, tmp_path):
        r = s.client.get("/report?lang=fr")
        assert '<html lang="fr" dir="ltr">' in r.text and "Faire un signalement" in r.text
        assert "Aide (fuzzy)" not in r.text and "Help and support" in r.text
        assert "Français" in r.text and "Melayu" in r.text
        r = s.client.get("/report?lang=ar")
        assert '<html lang="ar" dir="rtl">' in r.text and "تقديم بلاغ" in r.text
        r = s.client.get("/report?lang=ms")
        assert "Laporkan sekarang" in r.text and "Tanpa nama secara lalai" in r.text
        assert s.client.get("/report?lang=de").status_code == 200


# --------------------------------------------------------------------------- help


def test_help_page_defaults(site: Site) -> None:
    r = site.client.get("/report/help")
    assert "Help and support" in r.text and "Child Helpline International" in r.text
    assert 'href="https://stopncii.org/"' in r.text
    r = site.client.get("/report/help?lang=ms")
    assert "Bercakap dengan seseorang" in r.text


def test_help_page_from_the_operators_yaml(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "help.yaml"
    config.write_text(
        """
default: en
en:
  intro: "We are here for you. <script>alert(1)</script>"
  emergency: Call 999 now.
  sections:
    - title: Helplines
      entries:
        - name: Talian Kasih
          text: "Free and confidential.\\nAny day."
          phone: "15999"
          hours: 24 hours
          url: https://www.kpwkm.gov.my/
ms:
  intro: Kami sedia membantu.
  sections:
    - title: Talian bantuan
      entries:
        - {name: Talian Kasih, phone: "15999"}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SAFEHOLD_PORTAL_HELP", str(config))
    for s in make_site(sqlite_url, tmp_path):
        r = s.client.get("/report/help")
        assert "We are here for you. &lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        assert "<script>alert" not in r.text
        assert '<a href="tel:15999" dir="ltr">15999</a>' in r.text and "24 hours" in r.text
        assert 'href="https://www.kpwkm.gov.my/"' in r.text and "Child Helpline" not in r.text
        assert "Kami sedia membantu." in s.client.get("/report/help?lang=ms").text
        # an invalid file (a javascript: link) is refused: the built-in defaults are shown
        config.write_text(
            "en:\n  sections:\n    - title: x\n      entries:\n"
            "        - {name: bad, url: 'javascript:alert(1)'}\n",
            encoding="utf-8",
        )
        r = s.client.get("/report/help")
        assert "javascript:" not in r.text and "Child Helpline International" in r.text


def test_help_file_format_errors_say_where() -> None:
    from safehold.web.portal.help import parse_help

    with pytest.raises(ValueError, match=r"en.sections\[0\].entries\[0\].url"):
        parse_help(
            "en:\n  sections:\n    - title: x\n      entries:\n        - {name: a, url: 'ftp://x'}\n"
        )
    with pytest.raises(ValueError, match="unknown keys"):
        parse_help("en:\n  intro: x\n  colour: red\n")
    with pytest.raises(ValueError, match="not a language code"):
        parse_help("<b>: {}\n")
    assert parse_help("").languages == {}
    config = parse_help("default: ms\nms:\n  intro: Kami sedia membantu.\nen:\n  intro: Hi.\n")
    assert config.for_language("fr").intro == "Kami sedia membantu."  # the default section
    assert config.for_language("en_GB").intro == "Hi."


# --------------------------------------------------------------------------- privacy


def _dump(db: Database) -> str:
    """Every row of every table, as text."""
    meta = MetaData()
    meta.reflect(bind=db.engine)
    out = []
    with db.engine.connect() as conn:
        for table in meta.sorted_tables:
            out.extend(repr(tuple(row)) for row in conn.execute(table.select()))
    return "\n".join(out)


def test_no_client_address_or_user_agent_is_stored_or_logged(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFEHOLD_LOG_LEVEL", "debug")
    address, forwarded, agent = (
        "203.0.113.77",
        "198.51.100.23",
        "SafeholdProbe/9.9 (unique-ua-7f3a)",
    )
    for s in make_site(db_url, tmp_path, client=(address, 40001)):
        s.client.headers.update({"User-Agent": agent, "X-Forwarded-For": forwarded})
        number, secret = receipt_of(
            s.report(files=[("p.jpg", picture(7))], category="other", description="x")
        )
        s.status(number, secret)
        s.status(number, "0000-0000-0000-0000")  # a failure is not logged with the address
        s.report(category="nope")  # nor a validation error
        token = s.csrf(path="/report/hash")
        s.client.post(
            "/report/hash",
            json={
                "kind": "adult",
                "consent": True,
                "items": [{"md5": "b" * 32, "pdq": "f" * 64, "quality": 90}],
            },
            headers={"X-CSRF-Token": token},
        )
        s.client.get("/report/nope")
        metrics = s.client.get("/metrics").text
        dump = _dump(s.db)
        assert number.replace("-", "")[1:] in dump  # the dump does hold the report
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    for needle in (address, forwarded, agent, "unique-ua-7f3a"):
        assert needle not in dump, needle
        assert needle not in logs, needle
        assert needle not in metrics, needle
    for part in (address.replace(".", ""), "203.0.113"):
        assert part not in dump


def test_the_rate_limit_key_is_not_the_address(site: Site) -> None:
    site.report(category="other", description="x")
    keys = list(site.app.state.portal.limits.buckets._buckets)
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert not any("192.0.2.10" in k for k in keys)


def test_a_proxy_that_hides_the_client_is_reported_once(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for s in make_site(sqlite_url, tmp_path, client=("127.0.0.1", 40002)):
        s.client.headers["Forwarded"] = "for=unknown"
        for _ in range(2):
            receipt_of(s.report(category="other", description="x"))
    err = capsys.readouterr().err
    assert err.count("does not pass the client address on") == 1
    assert "127.0.0.1" not in err

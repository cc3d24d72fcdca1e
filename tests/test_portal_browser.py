"""The public portal in Debian's Chromium (Playwright), against ``safehold serve``.

An anonymous report with a synthetic picture, end to end: receipt (copied with the
copy button), status, withdrawal. On-device hashing through the page: the browser
hashes a drawn picture, only the hashes leave it, they equal Python's, a scan of the
picture through ``/v1/scan`` matches them, and after withdrawal it does not. The
Malay UI; a report made with the keyboard only (Tab, Space, Enter); proof-of-work in
the browser; and axe-core over every page in English and Malay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.browser import chromium, require_chromium
from tests.live_server import LiveServer, serve
from tests.media_factory import photo_like, write_image

from safehold.store import Database

ONDEVICE = Path(__file__).resolve().parents[1] / "src/safehold/web/portal/static/ondevice/hash.js"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_chromium()

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402


@dataclass
class Site:
    server: LiveServer
    db: Database
    key: str
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


POW_BITS = 8
"""Proof-of-work is on for this module's server, so every test also runs the solver in
portal.js (Web Crypto: 127.0.0.1 is a secure context)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from safehold.access import ApiKeys

    tmp = tmp_path_factory.mktemp("portal")
    db_url = f"sqlite:///{tmp / 'safehold.db'}"
    db = Database(db_url)
    key, _ = ApiKeys(db).create(scopes=["scan"], tenant="default", name="portal-browser")
    env = {"SAFEHOLD_MEDIA_DIR": str(tmp / "media"), "SAFEHOLD_PORTAL_POW_BITS": str(POW_BITS)}
    with serve(db_url, tmp / "server.log", env=env) as server:
        yield Site(server, db, key, tmp)
    db.close()


def new_page(browser: Browser, site: Site, *, phone: bool = False) -> Page:
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url) if not r.url.startswith((site.url, "data:", "blob:")) else None
        ),
    )
    page.outside_requests = outside  # type: ignore[attr-defined]
    return page


def no_third_party(page: Page) -> None:
    assert page.outside_requests == []  # type: ignore[attr-defined]


def receipt(page: Page) -> tuple[str, str]:
    number = page.locator("#receipt-number").inner_text().strip()
    secret = page.locator("#receipt-secret").inner_text().strip()
    assert re.fullmatch(r"[RH]-[0-9A-Z]{4}-[0-9A-Z]{4}", number), number
    assert re.fullmatch(r"([0-9A-Z]{4}-){3}[0-9A-Z]{4}", secret), secret
    return number, secret


def open_status(page: Page, site: Site, number: str, secret: str, lang: str = "en") -> None:
    page.goto(f"{site.url}/report/status?lang={lang}")
    page.fill("#number", number)
    page.fill("#secret", secret)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("h1")).to_contain_text(number)


# --------------------------------------------------------------------------- end to end


def test_anonymous_report_with_a_file_receipt_status_and_withdraw(
    browser: Browser, site: Site
) -> None:
    page = new_page(browser, site, phone=True)
    picture = write_image(site.tmp / "screenshot.png", photo_like(320, 240, seed=21), "png")
    # with proof-of-work on, the page says the form needs JavaScript (for those without)
    page.goto(f"{site.url}/report")
    assert "Turn on JavaScript" in (page.locator("noscript").first.inner_html() or "")
    page.goto(f"{site.url}/report")
    expect(page.locator("h1")).to_have_text("Make a report")
    expect(page.locator("details").first).not_to_have_attribute("open", "")
    page.get_by_label(re.compile("^Someone threatens to share my images")).check()
    page.get_by_label("Web addresses (links)").fill("https://images.example/album/77")
    page.get_by_label("Screenshots, pictures or videos").set_input_files(str(picture))
    page.get_by_role("button", name="Send the report").click()
    expect(page.locator("h1")).to_have_text("Thank you. We received your report.")
    number, secret = receipt(page)

    # the copy button (portal.js) puts the secret on the clipboard
    copy = page.get_by_role("button", name="Copy the secret")
    expect(copy).to_be_visible()
    copy.click()
    expect(page.locator("[data-copied]")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    open_status(page, site, number, secret)
    expect(page.locator(".facts")).to_contain_text("Received: we will look at your report soon.")
    expect(page.locator(".facts")).to_contain_text("Files")
    page.get_by_label("What would you like to add?").fill("The album has a second page now.")
    page.get_by_role("button", name="Add to the report").click()
    expect(page.locator(".notice-ok")).to_contain_text("Your information was added")
    expect(page.locator(".messages")).to_contain_text("The album has a second page now.")
    page.get_by_role("button", name="Withdraw…").click()
    expect(page.locator("main")).to_contain_text("This cannot be undone.")
    page.get_by_role("button", name="Yes, withdraw it").click()
    expect(page.locator(".notice-ok")).to_contain_text("Your report was withdrawn")
    expect(page.locator(".facts")).to_contain_text("Withdrawn")
    no_third_party(page)
    page.context.close()


def scan_matches(site: Site, path: Path) -> list[str]:
    with httpx.Client(base_url=site.url, timeout=60) as client:
        r = client.post(
            "/v1/scan",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            headers={"Authorization": f"Bearer {site.key}"},
        )
    assert r.status_code == 200, r.text
    return [m["bank"] for m in r.json()["matches"]]


def wait_for(check: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


def test_on_device_hashing_through_the_page(browser: Browser, site: Site) -> None:
    assert ONDEVICE.exists(), f"the on-device hashing module {ONDEVICE} is missing"
    from safehold.banks.repository import Banks
    from safehold.hashing import hash_file

    path = write_image(site.tmp / "me.jpg", photo_like(480, 360, seed=33), "jpeg")
    expected = hash_file(path)
    page = new_page(browser, site)
    posts: list[Any] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.goto(f"{site.url}/report/hash")
    start = page.get_by_role("button", name="Make the hashes")
    expect(start).to_be_enabled()
    page.get_by_label("The pictures or videos show me.").check()
    page.get_by_label("18 or older").check()
    page.get_by_label(re.compile("^I agree that the hashes")).check()
    page.get_by_label("Pictures or videos", exact=True).set_input_files(str(path))
    start.click()
    results = page.locator("[data-hash-list]")
    expect(results).to_contain_text(expected.md5, timeout=60_000)
    expect(results).to_contain_text(str(expected.pdq))
    page.get_by_role("button", name="Send the hashes").click()
    expect(page.locator("[data-hash-receipt]")).to_be_visible()
    number, secret = receipt(page)
    assert number.startswith("H-")

    # only the hashes went out: one small JSON POST, nothing of the picture
    assert [p.url.split("?")[0] for p in posts] == [f"{site.url}/report/hash"]
    body = posts[0].post_data_buffer or b""
    assert len(body) < 4096 and path.read_bytes()[100:140] not in body
    no_third_party(page)

    entries = {(e.signal_type, e.value) for e in Banks(site.db).entries("consent")}
    assert entries == {("md5", expected.md5), ("pdq", expected.pdq)}
    assert wait_for(lambda: "consent" in scan_matches(site, path))

    open_status(page, site, number, secret)
    expect(page.locator(".facts")).to_contain_text("Active")
    page.get_by_role("button", name="Withdraw…").click()
    page.get_by_role("button", name="Yes, withdraw it").click()
    expect(page.locator(".notice-ok")).to_contain_text("Your hashes were withdrawn")
    assert Banks(site.db).entries("consent") == []
    assert wait_for(lambda: "consent" not in scan_matches(site, path))
    page.context.close()


def test_the_malay_ui(browser: Browser, site: Site) -> None:
    page = new_page(browser, site, phone=True)
    page.goto(f"{site.url}/report")
    page.get_by_role("navigation", name="Language").get_by_role("link", name="Melayu").click()
    expect(page.locator("html")).to_have_attribute("lang", "ms")
    expect(page.locator("h1")).to_have_text("Buat laporan")
    page.get_by_label(re.compile("^Gambar intim disebarkan tanpa kebenaran")).check()
    page.get_by_label("Nama pengguna akaun").fill("@seseorang")
    page.get_by_role("button", name="Hantar laporan").click()
    expect(page.locator("h1")).to_have_text("Terima kasih. Kami telah menerima laporan anda.")
    number, secret = receipt(page)
    open_status(page, site, number, secret, lang="ms")
    expect(page.locator(".facts")).to_contain_text("Diterima")
    # the switcher on the status page sends the receipt again: same report, in English
    page.get_by_role("navigation", name="Bahasa").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(f"Your report {number}")
    page.context.close()


def test_a_report_with_the_keyboard_only(browser: Browser, site: Site) -> None:
    page = new_page(browser, site)
    page.goto(f"{site.url}/report")
    kb = page.keyboard

    def focused() -> dict[str, str]:
        return page.evaluate(
            "() => { const e = document.activeElement;"
            " const s = getComputedStyle(e);"
            " return {id: e.id || '', tag: e.tagName, text: (e.textContent || '').trim(),"
            " outline: s.outlineStyle + ' ' + s.outlineWidth, type: e.type || ''}; }"
        )

    def tab_to(match: Any, limit: int = 60) -> dict[str, str]:
        for _ in range(limit):
            kb.press("Tab")
            now = focused()
            if match(now):
                return now
        raise AssertionError(f"never reached the control; last focus {focused()}")

    first = tab_to(lambda f: True)
    assert first["text"] == "Skip to the main content"
    assert first["outline"] != "none 0px"  # focus is visible
    kb.press("Enter")
    assert focused()["id"] == "main"
    radio = tab_to(lambda f: f["id"].startswith("category-"))
    assert radio["outline"] != "none 0px"
    kb.press("ArrowDown")  # radio groups move with the arrows...
    kb.press("Space")  # ... and Space chooses
    chosen = page.evaluate("() => document.querySelector('input[name=category]:checked')?.id")
    assert chosen == focused()["id"] and chosen
    tab_to(lambda f: f["id"] == "urls")
    kb.type("https://chat.example/room/5")
    tab_to(lambda f: f["id"] == "description")
    kb.type("Typed with the keyboard only.")
    # the optional sections open with the keyboard too
    tab_to(lambda f: f["tag"] == "SUMMARY" and "contact" in f["text"].lower())
    kb.press("Enter")
    tab_to(lambda f: f["id"] == "email")
    kb.type("kb@example.org")
    tab_to(lambda f: f["tag"] == "BUTTON" and f["text"] == "Send the report")
    kb.press("Enter")
    expect(page.locator("h1")).to_have_text("Thank you. We received your report.")
    number, _secret = receipt(page)
    from sqlalchemy import select

    from safehold.intake.receipts import normalize_number
    from safehold.store.models import Report

    with site.db.session() as s:
        row = s.scalar(select(Report).where(Report.number == normalize_number(number)))
        assert row is not None and row.category in ("child_sexual_abuse", "grooming")
        assert row.description == "Typed with the keyboard only."
        assert row.contact == {"email": "kb@example.org"}
    page.context.close()


def test_proof_of_work_in_the_browser(browser: Browser, site: Site) -> None:
    page = new_page(browser, site)
    page.goto(f"{site.url}/report")
    challenge = page.locator("input[name=pow_challenge]").input_value()
    assert challenge.startswith(f"{POW_BITS}.")
    # the solver fills in the nonce by itself; the server's check agrees with it
    page.wait_for_function("() => document.querySelector('input[name=pow_nonce]').value")
    nonce = page.locator("input[name=pow_nonce]").input_value()
    import hashlib

    from safehold.web.portal.protection import leading_zero_bits

    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    assert leading_zero_bits(digest) >= POW_BITS
    # the small SHA-256 used where Web Crypto is missing (plain http on a LAN address)
    assert (
        page.evaluate(
            "() => Array.from(window.safeholdPortal.sha256(new TextEncoder().encode('abc')))"
            ".map(b => b.toString(16).padStart(2, '0')).join('')"
        )
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    long = "x" * 200 + ":" + "9" * 20  # more than one 64-byte block
    assert (
        page.evaluate(
            "(t) => Array.from(window.safeholdPortal.sha256(new TextEncoder().encode(t)))"
            ".map(b => b.toString(16).padStart(2, '0')).join('')",
            long,
        )
        == hashlib.sha256(long.encode()).hexdigest()
    )
    page.context.close()


# --------------------------------------------------------------------------- accessibility


def _pages(page: Page, site: Site, lang: str) -> Iterator[str]:
    """Visit every portal page (and state) in ``lang``; yield a name after each."""
    base = site.url
    page.goto(f"{base}/report?lang={lang}")
    yield "report"
    page.locator("#category-other").check()
    page.locator("details summary").nth(1).click()
    page.fill("#email", "not-an-email")
    page.locator("form.report-form button[type=submit]").click()
    page.wait_for_selector("#error-summary")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    yield "report with errors"
    page.fill("#email", "")
    page.fill("#description", "for the accessibility check")
    page.locator("form.report-form button[type=submit]").click()
    page.wait_for_selector("#receipt-secret")
    number, secret = receipt(page)
    yield "receipt"
    page.goto(f"{base}/report/status?lang={lang}")
    yield "check a report"
    page.fill("#number", number)
    page.fill("#secret", "0000-0000-0000-0000")
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector("#error-summary")
    yield "wrong secret"
    page.fill("#secret", secret)
    page.locator("main form button[type=submit]").click()
    page.wait_for_selector(".facts")
    yield "status"
    page.locator("form[action^='/report/status/withdraw'] button").click()
    page.wait_for_selector("input[name=confirm]", state="attached")
    yield "withdraw confirmation"
    page.goto(f"{base}/report/hash?lang={lang}")
    yield "hash it on your device"
    page.goto(f"{base}/report/help?lang={lang}")
    yield "help"
    page.goto(f"{base}/report/nothing-here?lang={lang}")
    yield "not found"


@pytest.mark.parametrize("lang", ["en", "ms"])
def test_axe_finds_nothing_on_any_page(browser: Browser, site: Site, lang: str) -> None:
    page = new_page(browser, site, phone=lang == "ms")
    axe = Axe()
    failures = []
    for name in _pages(page, site, lang):
        assert page.locator("html").get_attribute("lang") == lang, name
        result = axe.run(page, options={"resultTypes": ["violations"]})
        if result.violations_count:
            failures.append(f"{name} ({lang}):\n{result.generate_report()}")
    no_third_party(page)
    # a control: the same check does see a problem where there is one
    page.set_content('<html><body><main><img src="data:,"><input id="x"></main></body></html>')
    assert axe.run(page).violations_count > 0
    page.context.close()
    assert not failures, "\n\n".join(failures)

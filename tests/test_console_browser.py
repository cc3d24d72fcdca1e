"""The review console in Debian's Chromium (Playwright), against ``safehold serve``.

A synthetic picture that matches the demo bank is scanned through ``POST /v1/scan``
(the default rules block it and open a review case, through the job worker of the
server); a reviewer signs in, takes the next case with ``n``, sees the media blurred
and greyscale, reveals it with ``r`` for a few seconds until it blurs again, decides
with ``2`` + Ctrl+Enter; the audit log shows it; a referral needs a second reviewer;
a reviewer gets 403 on admin pages.
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
from tests.console_seed import PASSWORD, Seeded, scan, seed
from tests.live_server import LiveServer, serve

from safehold.store import Database

REVEAL_SECONDS = 3

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402


@dataclass
class Site:
    server: LiveServer
    seeded: Seeded
    db: Database

    @property
    def url(self) -> str:
        return self.server.url

    def scan_case(self, picture: int, account: str) -> int:
        """Scan a matching picture; wait for the job worker to open its case."""
        path = self.seeded.demo.queries[picture]
        with httpx.Client(base_url=self.url, timeout=60) as client:
            body = scan(client, self.seeded.key, path, account_id=account, content_id=path.name)
        assert body["decision"] == "block" and "review" in body["actions"]
        from safehold.audit import AuditLog
        from safehold.cases.service import Cases

        cases = Cases(self.db, AuditLog(self.db))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [c for c in cases.list_cases("default").cases if c.account_id == account]
            if found:
                return int(found[0].id)
            time.sleep(0.1)
        raise AssertionError(f"no case opened for {account}:\n{self.server.log_text()[-3000:]}")

    def audit(self, **kw: Any) -> list[Any]:
        from safehold.audit import AuditLog

        return AuditLog(self.db).list(**kw)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    db_url = f"sqlite:///{tmp_path / 'safehold.db'}"
    db = Database(db_url)
    seeded = seed(db, tmp_path)
    env = {
        "SAFEHOLD_MEDIA_DIR": str(tmp_path / "media"),
        "SAFEHOLD_REVEAL_SECONDS": str(REVEAL_SECONDS),
    }
    with serve(db_url, tmp_path / "server.log", env=env) as server:
        yield Site(server, seeded, db)
    db.close()


def new_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def login(page: Page, site: Site, name: str) -> None:
    page.goto(f"{site.url}/ui/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/$"))


def test_work_a_queue_end_to_end(browser: Browser, site: Site) -> None:
    case_id = site.scan_case(1, "acct-1")
    page = new_page(browser)
    login(page, site, "rita")
    expect(page.locator("table[aria-label=Queues]")).to_contain_text("default")

    page.keyboard.press("n")  # take the next case
    page.wait_for_url(f"{site.url}/ui/cases/{case_id}")
    expect(page.locator("h1")).to_contain_text(f"Case #{case_id}")
    expect(page.locator(".matches")).to_contain_text("demo")

    # blurred and greyscale by default: the server sent only the blurred rendition
    img = page.locator("article.item figure.media img")
    expect(img).to_have_count(1)
    src = img.get_attribute("src") or ""
    assert src.endswith("/blurred"), src
    assert "grayscale(1)" in img.evaluate("e => getComputedStyle(e).filter")
    assert page.evaluate(
        "() => performance.getEntriesByType('resource').every(e => !e.name.includes('/revealed'))"
    )
    assert not site.audit(action="view_media")

    # reveal with the keyboard: the unblurred rendition, for a limited time
    page.keyboard.press("r")
    revealed = page.locator("figure.media.is-revealed img.revealed")
    expect(revealed).to_have_count(1)
    assert "/revealed?" in (revealed.get_attribute("src") or "")
    assert revealed.evaluate("e => getComputedStyle(e).filter") == "none"
    page.wait_for_function("() => document.querySelector('img.revealed')?.naturalWidth > 0")
    expect(page.locator("[data-countdown]")).to_be_visible()
    views = site.audit(action="view_media")
    assert len(views) == 1 and views[0].actor == "user:rita"

    # ... then blurred again without anyone asking
    expect(page.locator("figure.media.is-revealed")).to_have_count(
        0, timeout=(REVEAL_SECONDS + 5) * 1000
    )
    img = page.locator("article.item figure.media img")
    assert (img.get_attribute("src") or "").endswith("/blurred")
    assert "grayscale(1)" in img.evaluate("e => getComputedStyle(e).filter")
    expect(page.locator("[data-reveal]")).to_be_visible()

    # decide with the keyboard: 2 = remove, Ctrl+Enter submits (label preselected)
    page.keyboard.press("2")
    expect(page.locator("input[name=action][value=remove]")).to_be_checked()
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(rf".*/ui/cases/{case_id}(#decisions)?$"))
    expect(page.locator(".case-head")).to_contain_text("actioned")
    expect(page.locator("#decisions")).to_contain_text("remove")

    # the audit log shows it to an admin
    admin = new_page(browser)
    login(admin, site, "alice")
    admin.goto(f"{site.url}/ui/audit?actor=user:rita")
    table = admin.locator("table[aria-label='Audit entries']")
    expect(table).to_contain_text("decide")
    expect(table).to_contain_text("view_media")
    expect(table).to_contain_text(f"case:{case_id}")
    admin.get_by_role("button", name="Verify chain").click()
    expect(admin.locator("#verify-result")).to_contain_text("Chain intact")


def test_reviewer_cannot_reach_admin_pages(browser: Browser, site: Site) -> None:
    page = new_page(browser)
    login(page, site, "rita")
    expect(page.get_by_role("navigation", name="Console")).not_to_contain_text("Users")
    for path in ("/ui/admin/users", "/ui/audit", "/ui/team", "/ui/rules", "/ui/webhooks"):
        response = page.goto(f"{site.url}{path}")
        assert response is not None and response.status == 403, path
        expect(page.locator("h1")).to_have_text("Not allowed")


def test_referral_needs_a_second_reviewer(browser: Browser, site: Site) -> None:
    case_id = site.scan_case(2, "acct-2")
    rita = new_page(browser)
    login(rita, site, "rita")
    rita.goto(f"{site.url}/ui/next?queue=default")
    rita.wait_for_url(f"{site.url}/ui/cases/{case_id}")
    rita.keyboard.press("4")  # refer
    rita.get_by_label("Reason").fill("Known material, refer")
    rita.keyboard.press("Control+Enter")
    expect(rita.locator("[data-testid=pending-decision]")).to_contain_text(
        "Waiting for a second reviewer"
    )
    expect(rita.get_by_role("button", name="Confirm")).to_have_count(0)

    remy = new_page(browser)
    login(remy, site, "remy")
    remy.goto(f"{site.url}/ui/cases/{case_id}")
    expect(remy.locator("[data-testid=pending-decision]")).to_contain_text("proposed by rita")
    remy.get_by_role("button", name="Confirm").click()
    expect(remy.locator(".case-head")).to_contain_text("referred")
    assert [e.actor for e in site.audit(action="confirm")] == ["user:remy"]

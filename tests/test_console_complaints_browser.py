"""Complaint handling in Debian's Chromium (Playwright), against ``safehold serve``.

A report is made as the public portal makes it (made-up URL on an example domain, a
made-up description, a picture drawn by code). A lead goes to the complaints with
``g`` ``c``, opens the complaint from the list, starts the investigation, drafts a
takedown notice for its URL, records it as sent manually, marks it removed, resolves
the complaint (``Ctrl``+``Enter`` in the form) and writes to the reporter (``m``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.browser import chromium, require_chromium
from tests.console_seed import PASSWORD, picture, seed_users
from tests.live_server import LiveServer, serve

from safehold.intake import NewReport, ReportFile
from safehold.intake.receipts import Receipt
from safehold.store import Database
from safehold.web.service import Service

URL = "https://files.example.org/u/7f3a/photo-12.jpg"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402


@dataclass
class Site:
    server: LiveServer
    db: Database
    svc: Service

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.delenv("SAFEHOLD_SMTP_URL", raising=False)
    db_url = f"sqlite:///{tmp_path / 'safehold.db'}"
    db = Database(db_url)
    seed_users(db)
    env = {"SAFEHOLD_MEDIA_DIR": str(tmp_path / "media")}
    with serve(db_url, tmp_path / "server.log", env=env) as server:
        yield Site(server, db, Service.open(db))
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


def report(site: Site, tmp_path: Path) -> Receipt:
    receipt: Receipt = site.svc.reports.submit(
        NewReport(
            category="child_sexual_abuse",
            urls=URL,
            platform="Example Forum",
            description="A forum thread links to these pictures.",
            contact={"email": "pat@example.org"},
            files=[ReportFile(picture(tmp_path, 11), "screenshot.png")],
        )
    )
    return receipt


def test_a_lead_works_a_complaint_end_to_end(browser: Browser, site: Site, tmp_path: Path) -> None:
    r = report(site, tmp_path)
    page = new_page(browser)
    login(page, site, "leo")

    # g c: the complaints; open this one from the list
    page.keyboard.press("g")
    page.keyboard.press("c")
    page.wait_for_url(f"{site.url}/ui/complaints")
    table = page.locator("table[aria-label=Complaints]")
    expect(table).to_contain_text("Example Forum")
    table.get_by_role("link", name=f"#{r.case_id}").click()
    page.wait_for_url(f"{site.url}/ui/cases/{r.case_id}")
    panel = page.locator("#complaint-panel.complaint")  # loaded by htmx
    expect(panel).to_contain_text(r.display_number)
    expect(panel.locator(".url-text")).to_have_text(URL)
    expect(panel).to_contain_text("pat@example.org")
    expect(page.locator("#decide-form")).to_have_count(0)
    img = page.locator("article.item figure.media img")  # the reported file, blurred
    assert (img.get_attribute("src") or "").endswith("/blurred")

    # assess → investigate: the panel and the case head change without a reload
    panel.get_by_role("button", name="Start investigation").click()
    expect(panel.locator(".stages [aria-current=step]")).to_have_text("investigate")
    expect(page.locator("[data-testid=case-stage]")).to_have_text("investigate")
    expect(panel.locator("[data-testid=panel-done]")).to_contain_text("Investigation started")

    # a takedown notice for the URL: drafted, then recorded as sent manually
    panel.get_by_role("button", name="Draft takedown notice").click()
    page.wait_for_url(re.compile(rf"{site.url}/ui/notices/\d+$"))
    notice_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_label("To (e-mail)")).to_have_value("abuse@example.org")
    expect(page.locator("[data-testid=recipient-guessed]")).to_be_visible()
    expect(page.get_by_role("button", name="Send by e-mail")).to_be_disabled()
    expect(page.get_by_label("Body")).to_have_value(re.compile(re.escape(URL)))
    page.get_by_role("button", name="Record as sent manually").click()
    expect(page.locator("[data-testid=notice-done]")).to_contain_text("Recorded as sent")
    expect(page.locator("#tracking [data-testid=notice-status]")).to_have_text("sent")

    # the host removed it
    page.get_by_role("button", name="Removed").click()
    expect(page.locator("#tracking [data-testid=notice-status]")).to_have_text("removed")
    assert site.svc.notices.get(notice_id, "default").status == "removed"

    # back to the complaint: resolve it (the outcome is suggested by the notice)
    page.get_by_role("link", name=f"Complaint #{r.case_id}").click()
    page.wait_for_url(f"{site.url}/ui/cases/{r.case_id}")
    expect(panel.locator("[data-testid=notice-status]")).to_have_text("removed")
    expect(panel.get_by_label("Outcome")).to_have_value("removed_by_host")
    panel.get_by_label("Reason").fill("The host confirmed the removal.")
    page.keyboard.press("Control+Enter")
    expect(panel.locator("[data-testid=outcome]")).to_contain_text("Content removed by the host")
    expect(page.locator("[data-testid=case-stage]")).to_have_text("resolved")

    # m: write to the reporter; Ctrl+Enter sends
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("m")
    box = panel.get_by_label(f"Message to the reporter of {r.display_number}")
    expect(box).to_be_focused()
    page.keyboard.type("Thank you: the pictures have been removed.")
    page.keyboard.press("Control+Enter")
    expect(panel.locator("[data-testid=panel-done]")).to_contain_text("Message sent")
    expect(panel.locator(".message-to_reporter")).to_contain_text("have been removed")

    status = site.svc.reports.status(r.display_number, r.secret)
    assert status.state == "resolved" and status.outcome == "removed_by_host"
    assert [m.body for m in status.messages] == ["Thank you: the pictures have been removed."]
    actions = [e.action for e in site.svc.audit.list(actor="user:leo", limit=100)]
    for action in (
        "complaint_stage",
        "notice_draft",
        "notice_sent",
        "notice_check",
        "complaint_resolved",
        "reporter_message",
    ):
        assert action in actions, action


def test_errors_show_inline_and_auditors_only_read(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    r = report(site, tmp_path)
    page = new_page(browser)
    login(page, site, "rita")
    page.goto(f"{site.url}/ui/cases/{r.case_id}")
    panel = page.locator("#complaint-panel.complaint")
    panel.get_by_label("Outcome").select_option("no_action")
    panel.get_by_role("button", name="Resolve").click()
    expect(panel.locator("[data-testid=panel-error]")).to_contain_text("Say why no action")
    assert site.svc.cases.get(r.case_id).case.stage == "assess"

    aude = new_page(browser)
    login(aude, site, "aude")
    aude.goto(f"{site.url}/ui/cases/{r.case_id}")
    panel = aude.locator("#complaint-panel.complaint")
    expect(panel).to_contain_text(r.display_number)
    expect(panel).not_to_contain_text("pat@example.org")
    expect(panel.get_by_role("button")).to_have_count(0)
    response = aude.goto(f"{site.url}/ui/hosts")
    assert response is not None and response.status == 200
    expect(aude.get_by_role("button", name="Save contact")).to_have_count(0)

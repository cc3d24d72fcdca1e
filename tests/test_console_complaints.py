"""Complaint handling in the review console (TestClient; SQLite and PostgreSQL).

Complaints are made as the public portal makes them (``Reports.submit`` with made-up
URLs on example domains and made-up text; files are pictures drawn by code), then
worked through the console's pages: the complaints list, the complaint panel of the
case page (htmx fragments), notices with their rechecks, the block list downloads,
notice templates (the sandbox refuses what could run code) and host contacts. Roles:
reviewers work complaints and notices, leads and admins also templates and contacts,
auditors read everything without the reporters' contact details and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from tests.console_seed import PASSWORD, picture, seed_users
from tests.intake_helpers import cheap_hashing

from safehold.intake import NewReport, ReportFile
from safehold.intake.receipts import Receipt
from safehold.store import Database
from safehold.store.models import Case, Notice, utcnow
from safehold.web.app import create_app
from safehold.web.ui import complaint_pages
from safehold.web.ui.render import CSP

BASE = "http://127.0.0.1"
HTMX = {"HX-Request": "true"}
URL = "https://files.example.org/u/7f3a/photo-12.jpg"


@dataclass
class Hotline:
    app: Any
    db: Database
    tmp: Path

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE)

    @property
    def svc(self) -> Any:
        return self.app.state.service

    def report(self, **kw: Any) -> Receipt:
        args: dict[str, Any] = {"category": "child_sexual_abuse", "urls": URL}
        args.update(kw)
        receipt: Receipt = self.svc.reports.submit(NewReport(**args))
        return receipt

    def user(self, name: str) -> Any:
        return self.svc.users.by_name(name)


def _hotline(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hotline]:
    cheap_hashing(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.delenv("SAFEHOLD_SMTP_URL", raising=False)
    db = Database(url)
    seed_users(db)  # alice admin, rita and remy reviewers, leo lead, aude auditor
    app = create_app(db, queue_url="memory://?immediate=1", worker=False)
    with TestClient(app, base_url=BASE):  # runs the lifespan
        yield Hotline(app, db, tmp_path)
    db.close()


@pytest.fixture()
def h(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hotline]:
    """The console on SQLite and on PostgreSQL."""
    yield from _hotline(db_url, tmp_path, monkeypatch)


@pytest.fixture()
def hs(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hotline]:
    """The console on SQLite only (details that do not depend on the database)."""
    yield from _hotline(sqlite_url, tmp_path, monkeypatch)


# --- helpers ---------------------------------------------------------------------------


def login(client: TestClient, name: str) -> str:
    """Sign in; returns the session's CSRF token."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert found
    r = client.post(
        "/ui/login",
        data={"name": name, "password": PASSWORD, "csrf": found.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/ui/me").text)
    assert token
    return token.group(1)


def hx(csrf: str) -> dict[str, str]:
    return {**HTMX, "X-CSRF-Token": csrf}


def panel_error(html: str) -> str:
    found = re.search(r'data-testid="panel-error">([^<]*)<', html)
    return found.group(1) if found else ""


def url_id(h: Hotline, case_id: int, host: str) -> int:
    for r in h.svc.reports.for_case(case_id, "default"):
        for u in r.urls:
            if u.host == host:
                return int(u.id)
    raise AssertionError(f"case {case_id} has no URL on {host}")


def draft(client: TestClient, csrf: str, case_id: int, uid: int, what: str, **form: str) -> int:
    r = client.post(
        f"/ui/cases/{case_id}/complaint/notices",
        data={"url_id": str(uid), "what": what, **form},
        headers=hx(csrf),
    )
    assert r.status_code == 204, r.text[:500]
    target = r.headers["HX-Redirect"]
    assert re.fullmatch(r"/ui/notices/\d+", target)
    return int(target.rsplit("/", 1)[1])


def send_manually(h: Hotline, client: TestClient, csrf: str, notice_id: int) -> None:
    n = h.svc.notices.get(notice_id, "default")
    r = client.post(
        f"/ui/notices/{notice_id}/edit",
        data={
            "csrf": csrf,
            "subject": n.subject,
            "body": n.body,
            "recipient_email": n.recipient_email,
            "recipient_name": n.recipient_name,
            "then": "manual",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]


# --- pages -----------------------------------------------------------------------------


def test_every_page_renders(h: Hotline) -> None:
    r = h.report(
        urls=f"{URL}\nhttps://img.example-cdn.net/p/991",
        platform="Example Forum",
        username="collector_42",
        description="A thread links to these pictures.\nThe second link is a mirror.",
        demographics={"age_band": "13_15", "relation": "bystander", "country": "NZ"},
        contact={"name": "Pat", "email": "pat@example.org"},
        files=[ReportFile(picture(h.tmp, 5), "screenshot.png")],
    )
    h.report(urls=URL, description="Same link again, in a group chat.")  # a duplicate
    leo = h.user("leo")
    h.svc.contacts.put("default", domain="example.org", name="Example", email="abuse@ex.example")
    takedown = h.svc.notices.draft(r.case_id, leo, kind="takedown", url=URL)
    block = h.svc.notices.draft(
        r.case_id, leo, kind="block", url="https://img.example-cdn.net/p/991", scope="host"
    )
    h.svc.notices.send(block.id, leo, via="manual")
    pages = [
        "/ui/complaints",
        "/ui/complaints?stage=all&flag=duplicate&category=child_sexual_abuse",
        "/ui/complaints?stage=investigate&queue=reports-csam&overdue=true",
        f"/ui/cases/{r.case_id}",
        f"/ui/cases/{r.case_id}/complaint",
        "/ui/notices",
        "/ui/notices?due=true&kind=block&status=sent",
        f"/ui/notices/{takedown.id}",
        f"/ui/notices/{block.id}",
        "/ui/blocklist",
        "/ui/notice-templates",
        "/ui/notice-templates?kind=block&jurisdiction=MY&language=ms",
        "/ui/notice-templates?kind=takedown&jurisdiction=AU&language=en",
        "/ui/hosts",
        "/ui/hosts?edit=example.org",
    ]
    with h.client() as client:
        login(client, "alice")
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:800])
            assert page.headers["content-security-policy"] == CSP, path
            assert page.headers["x-frame-options"] == "DENY"
            assert "Traceback" not in page.text
        fragment = client.get(f"/ui/cases/{r.case_id}/complaint", headers=HTMX)
        assert fragment.status_code == 200
        assert fragment.text.lstrip().startswith('<section id="complaint-panel"')
        assert "<html" not in fragment.text
        # the case page loads the panel (htmx) in place of the decision form
        case_page = client.get(f"/ui/cases/{r.case_id}").text
        assert f'hx-get="/ui/cases/{r.case_id}/complaint"' in case_page
        assert 'id="decide-form"' not in case_page
        assert f"Complaint #{r.case_id}" in case_page
        assert "/blurred" in case_page  # the reported file, blurred like any case item
        # the panel shows the reports, the URLs and their notices, the clocks
        text = fragment.text
        assert r.display_number in text and "duplicate" in text
        assert "13 to 15" in text and "I came across it" in text and "New Zealand" in text
        assert "Example Forum" in text and "collector_42" in text
        assert 'host <bdi class="mono">img.example-cdn.net</bdi>' in text
        assert 'registrable domain <bdi class="mono">example-cdn.net</bdi>' in text
        assert f"/ui/notices/{takedown.id}" in text and f"/ui/notices/{block.id}" in text
        assert 'aria-label="Time in each stage"' in text
        assert "Start investigation" in text
        # reported URLs are text, never links
        assert f'href="{URL}' not in text and 'href="https://img.' not in text
        # a content case still has its decision form
    assert h.svc.audit.list(action="view_case", actor="user:alice")


def test_complaint_workflow_end_to_end(h: Hotline) -> None:
    """assess → investigate → takedown drafted, sent manually, rechecked up then gone
    (removed) → resolved with an outcome → the reporter's status says resolved; then a
    message to the reporter, and a lead reopens it."""
    r = h.report(contact={"email": "pat@example.org"}, description="Pictures on a file host")
    with h.client() as client:
        csrf = login(client, "leo")
        listing = client.get("/ui/complaints")
        assert f'href="/ui/cases/{r.case_id}"' in listing.text
        assert re.search(r'data-testid="count-assess">1<', listing.text)
        # take next: the complaint is assigned to leo and opened
        taken = client.post("/ui/complaints/next", data={"csrf": csrf}, follow_redirects=False)
        assert taken.status_code == 303
        assert taken.headers["location"] == f"/ui/cases/{r.case_id}"
        assert h.svc.cases.get(r.case_id).case.assignee == "leo"

        # assess → investigate (htmx: the panel comes back, the case head out of band)
        p = client.post(
            f"/ui/cases/{r.case_id}/complaint/investigate",
            data={"note": "Checking the host"},
            headers=hx(csrf),
        )
        assert p.status_code == 200, p.text[:500]
        assert 'aria-current="step">investigate<' in p.text
        assert 'id="case-meta" hx-swap-oob="true"' in p.text
        assert "Investigation started" in p.text
        assert h.svc.reports.status(r.display_number, r.secret).state == "in_progress"

        # a takedown notice for the URL, to a guessed abuse@ address
        nid = draft(client, csrf, r.case_id, url_id(h, r.case_id, "files.example.org"), "takedown")
        page = client.get(f"/ui/notices/{nid}").text
        assert "abuse@example.org" in page and 'data-testid="recipient-guessed"' in page
        assert re.search(r'value="email" disabled', page)  # no SAFEHOLD_SMTP_URL
        assert 'data-testid="mail-off"' in page
        notice = h.svc.notices.get(nid, "default")
        assert notice.status == "draft" and notice.url == URL

        # edit it and record it as sent manually
        r2 = client.post(
            f"/ui/notices/{nid}/edit",
            data={
                "csrf": csrf,
                "subject": "Please remove SH-" + str(r.case_id),
                "body": notice.body + "\r\nWith thanks.",
                "recipient_email": "abuse@example.org",
                "recipient_name": "Example Files",
                "then": "manual",
            },
            follow_redirects=False,
        )
        assert r2.status_code == 303 and r2.headers["location"].endswith("?done=manual")
        notice = h.svc.notices.get(nid, "default")
        assert notice.status == "sent" and notice.sent_via == "manual"
        assert notice.subject == f"Please remove SH-{r.case_id}"
        assert notice.body.endswith("With thanks.") and "\r" not in notice.body
        assert notice.recipient_name == "Example Files"
        assert "Recorded as sent" in client.get(r2.headers["location"]).text

        # recheck: still up, then gone (removed)
        up = client.post(f"/ui/notices/{nid}/check", data={"csrf": csrf, "result": "up"})
        assert up.status_code == 200 and "still up" in up.text
        notice = h.svc.notices.get(nid, "default")
        assert notice.status == "sent" and notice.checks == 1 and notice.next_check_at
        gone = client.post(f"/ui/notices/{nid}/check", data={"csrf": csrf, "result": "gone"})
        assert gone.status_code == 200
        assert h.svc.notices.get(nid, "default").status == "removed"

        # the panel shows it removed and suggests the outcome
        panel = client.get(f"/ui/cases/{r.case_id}/complaint", headers=HTMX).text
        assert re.search(r'data-testid="notice-status">removed<', panel)
        assert re.search(r'value="removed_by_host" selected', panel)

        # resolve with that outcome
        done = client.post(
            f"/ui/cases/{r.case_id}/complaint/resolve",
            data={"outcome": "removed_by_host", "reason": "Host confirmed", "label": "A2"},
            headers=hx(csrf),
        )
        assert done.status_code == 200, done.text[:500]
        assert 'data-testid="outcome">Resolved: <strong>Content removed by the host' in done.text
        case = h.svc.cases.get(r.case_id).case
        assert case.stage == "resolved" and case.state == "actioned" and "A2" in case.labels
        status = h.svc.reports.status(r.display_number, r.secret)
        assert status.state == "resolved" and status.outcome == "removed_by_host"

        # a message to the reporter: they read it with the receipt (no mail configured)
        msg = client.post(
            f"/ui/cases/{r.case_id}/complaint/reports/{r.report_id}/message",
            data={"body": "Thank you: the pictures have been removed."},
            headers=hx(csrf),
        )
        assert msg.status_code == 200
        assert "Message sent to the reporter" in msg.text
        assert "An e-mail tells them" not in msg.text
        messages = h.svc.reports.status(r.display_number, r.secret).messages
        assert [m.body for m in messages] == ["Thank you: the pictures have been removed."]
        assert messages[0].direction == "to_reporter"

        # a lead reopens it
        again = client.post(
            f"/ui/cases/{r.case_id}/complaint/reopen",
            data={"reason": "The reporter found a copy"},
            headers=hx(csrf),
        )
        assert again.status_code == 200
        assert h.svc.cases.get(r.case_id).case.stage == "investigate"

    actions = {e.action for e in h.svc.audit.list(actor="user:leo", limit=200)}
    assert {
        "complaint_stage",
        "notice_draft",
        "notice_edit",
        "notice_sent",
        "notice_check",
        "complaint_resolved",
        "reporter_message",
        "reopen",
    } <= actions


def test_panel_errors_are_shown_inline(h: Hotline) -> None:
    r = h.report()
    with h.client() as client:
        csrf = login(client, "rita")
        base = f"/ui/cases/{r.case_id}/complaint"
        # no reason for "no action": the panel comes back with the message beside the form
        p = client.post(f"{base}/resolve", data={"outcome": "no_action"}, headers=hx(csrf))
        assert p.status_code == 422 and p.headers["X-Inline-Error"] == "1"
        assert "Say why no action is taken" in panel_error(p.text)
        assert p.text.lstrip().startswith('<section id="complaint-panel"')
        p = client.post(f"{base}/resolve", data={"outcome": ""}, headers=hx(csrf))
        assert p.status_code == 422 and "Choose an outcome" in panel_error(p.text)
        p = client.post(f"{base}/resolve", data={"outcome": "deleted_it"}, headers=hx(csrf))
        assert p.status_code == 422 and "Unknown outcome" in panel_error(p.text)
        p = client.post(
            f"{base}/resolve",
            data={"outcome": "advice_given", "label": "not-a-label", "reason": "kept"},
            headers=hx(csrf),
        )
        assert p.status_code == 422 and panel_error(p.text)
        assert ">kept</textarea>" in p.text  # what was typed is kept
        # starting twice is a conflict
        assert client.post(f"{base}/investigate", headers=hx(csrf)).status_code == 200
        p = client.post(f"{base}/investigate", headers=hx(csrf))
        assert p.status_code == 409 and "not waiting for assessment" in panel_error(p.text)
        # an empty message
        p = client.post(
            f"{base}/reports/{r.report_id}/message", data={"body": "   "}, headers=hx(csrf)
        )
        assert p.status_code == 422 and "empty" in panel_error(p.text)
        # without htmx: the complaint on a page of its own, with the error
        p = client.post(f"{base}/resolve", data={"csrf": csrf, "outcome": "no_action"})
        assert p.status_code == 422 and "<html" in p.text and "Say why" in p.text
        # and a success redirects there
        p = client.post(
            f"{base}/resolve",
            data={"csrf": csrf, "outcome": "advice_given"},
            follow_redirects=False,
        )
        assert p.status_code == 303 and p.headers["location"] == f"{base}?done=resolve"
        assert "Resolved." in client.get(p.headers["location"]).text
        # the standalone page records the view
        assert h.svc.audit.list(action="view_case", actor="user:rita")
        # a message to the reporter of another case is refused
        other = h.report(urls="https://elsewhere.example.net/x")
        p = client.post(
            f"{base}/reports/{other.report_id}/message", data={"body": "hi"}, headers=hx(csrf)
        )
        assert p.status_code == 404
        # the panel of a scanned content case does not exist
        ref = h.svc.cases.open_or_attach(
            tenant="default",
            queue="default",
            labels=["A1"],
            account_id="u1",
            content_id="c1",
            event_id=None,
            media_id=None,
            signals={"sha256": "a" * 64},
            matches=[],
        )
        assert client.get(f"/ui/cases/{ref.case_id}/complaint").status_code == 404
        assert 'id="decide-form"' in client.get(f"/ui/cases/{ref.case_id}").text


def test_recategorise_and_csrf(h: Hotline) -> None:
    r = h.report(category="other", urls=None, platform="GameHub", description="A chat room")
    with h.client() as client:
        csrf = login(client, "rita")
        base = f"/ui/cases/{r.case_id}/complaint"
        assert client.post(f"{base}/recategorise", data={"category": "grooming"}).status_code == 403
        p = client.post(f"{base}/recategorise", data={"category": "grooming"}, headers=hx(csrf))
        assert p.status_code == 200 and "Recategorised" in p.text
        case = h.svc.cases.get(r.case_id).case
        assert case.queue == "reports-grooming"
        p = client.post(f"{base}/recategorise", data={"category": "nonsense"}, headers=hx(csrf))
        assert p.status_code == 422 and "unknown report category" in panel_error(p.text).lower()


# --- the list --------------------------------------------------------------------------


def test_complaints_list_filters_pages_and_takes_next(
    h: Hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    urgent = h.report(urls="https://a.example.org/1")
    dup = h.report(urls="https://a.example.org/1", description="again")  # joins urgent
    assert dup.case_id == urgent.case_id
    grooming = h.report(category="grooming", urls=None, platform="ChatApp", description="x" * 20)
    spam = h.report(category="other", urls=None, platform="?", description="hi")
    late = h.report(category="intimate_images", urls="https://b.example.net/v")
    with h.db.session() as s:
        s.execute(
            update(Case)
            .where(Case.id == late.case_id)
            .values(sla_due_at=utcnow() - timedelta(hours=2))
        )
    with h.client() as client:
        csrf = login(client, "rita")

        def ids(query: str) -> list[int]:
            page = client.get(f"/ui/complaints?{query}")
            assert page.status_code == 200, page.text[:300]
            body = page.text.split('aria-label="Complaints"', 1)[1]
            return [int(x) for x in re.findall(r'<a href="/ui/cases/(\d+)"><strong>', body)]

        assert ids("") == [urgent.case_id, grooming.case_id, late.case_id, spam.case_id]
        assert ids("flag=duplicate") == [urgent.case_id]
        assert ids("flag=spam") == [spam.case_id]
        assert ids("flag=spam:empty") == [spam.case_id]
        assert ids("category=grooming") == [grooming.case_id]
        assert ids("queue=reports-spam") == [spam.case_id]
        assert ids("overdue=true") == [late.case_id]
        assert ids("stage=investigate") == []
        assert ids("stage=resolved") == []
        assert client.get("/ui/complaints?flag=nope").status_code == 422
        assert client.get("/ui/complaints?queue=default").status_code == 422
        # pages
        monkeypatch.setattr(complaint_pages, "PAGE_SIZE", 2)
        first = client.get("/ui/complaints").text
        found = re.search(r'href="(/ui/complaints\?[^"]*cursor=[^"]+)" rel="next"', first)
        assert found
        second = client.get(found.group(1).replace("&amp;", "&")).text
        body = second.split('aria-label="Complaints"', 1)[1]
        assert [int(x) for x in re.findall(r'<a href="/ui/cases/(\d+)"><strong>', body)] == [
            late.case_id,
            spam.case_id,
        ]
        monkeypatch.setattr(complaint_pages, "PAGE_SIZE", 50)
        # a report number opens its complaint
        r = client.get(
            f"/ui/complaints?number={grooming.display_number.lower()}", follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == f"/ui/cases/{grooming.case_id}"
        missing = client.get("/ui/complaints?number=R-0000-0000")
        assert missing.status_code == 404 and "No report has that number" in missing.text
        # take next: the most urgent first, then by queue
        taken = client.post("/ui/complaints/next", data={"csrf": csrf}, follow_redirects=False)
        assert taken.headers["location"] == f"/ui/cases/{urgent.case_id}"
        taken = client.post(
            "/ui/complaints/next",
            data={"csrf": csrf, "queue": "reports-spam"},
            follow_redirects=False,
        )
        assert taken.headers["location"] == f"/ui/cases/{spam.case_id}"
        # the complaint queues also work with the queues' own "next"
        r = client.get("/ui/next?queue=reports-grooming", follow_redirects=False)
        assert r.headers["location"] == f"/ui/cases/{grooming.case_id}"
    with h.client() as remy:
        csrf = login(remy, "remy")
        taken = remy.post("/ui/complaints/next", data={"csrf": csrf}, follow_redirects=False)
        assert taken.headers["location"] == f"/ui/cases/{late.case_id}"
    with h.client() as alice:  # everything is taken now
        csrf = login(alice, "alice")
        empty = alice.post("/ui/complaints/next", data={"csrf": csrf})
        assert empty.status_code == 200 and "No open case" in empty.text


# --- notices ---------------------------------------------------------------------------


def test_notice_cancel_redraft_and_mail_setting(
    hs: Hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = hs.report()
    with hs.client() as client:
        csrf = login(client, "rita")
        uid = url_id(hs, r.case_id, "files.example.org")
        nid = draft(client, csrf, r.case_id, uid, "takedown", jurisdiction="MY", language="ms")
        n = hs.svc.notices.get(nid, "default")
        assert n.jurisdiction == "MY" and n.language == "ms"
        assert n.subject.startswith("Permintaan penurunan kandungan")
        # draft again in English: a new draft, the old one cancelled
        again = client.post(
            f"/ui/notices/{nid}/redraft",
            data={"csrf": csrf, "jurisdiction": "default", "language": "en"},
            follow_redirects=False,
        )
        assert again.status_code == 303
        new_id = int(again.headers["location"].split("/")[-1].split("?")[0])
        assert hs.svc.notices.get(nid, "default").status == "cancelled"
        assert hs.svc.notices.get(new_id, "default").subject.startswith("Takedown request")
        # a bad address is refused with the draft kept
        bad = client.post(
            f"/ui/notices/{new_id}/edit",
            data={"csrf": csrf, "subject": "S", "body": "B", "recipient_email": "nope"},
        )
        assert bad.status_code == 422 and "does not look like one" in bad.text
        assert 'value="nope"' in bad.text
        # e-mail is refused while SAFEHOLD_SMTP_URL is unset
        refused = client.post(f"/ui/notices/{new_id}/send", data={"csrf": csrf, "via": "email"})
        assert refused.status_code == 409 and "not configured" in refused.text
        monkeypatch.setenv("SAFEHOLD_SMTP_URL", "smtp://127.0.0.1:9")
        page = client.get(f"/ui/notices/{new_id}").text
        assert 'value="email">Send by e-mail' in page and 'data-testid="mail-off"' not in page
        monkeypatch.delenv("SAFEHOLD_SMTP_URL")
        # block requests: this URL, or the whole host; a takedown cannot be for a host
        block = draft(client, csrf, r.case_id, uid, "block-host")
        assert hs.svc.notices.get(block, "default").scope == "host"
        p = client.post(
            f"/ui/cases/{r.case_id}/complaint/notices",
            data={"url_id": str(uid), "what": "delete-it"},
            headers=hx(csrf),
        )
        assert p.status_code == 422
        # cancel
        cancelled = client.post(
            f"/ui/notices/{block}/close",
            data={"csrf": csrf, "status": "cancelled", "note": "wrong host"},
        )
        assert cancelled.status_code == 200 and "Notice cancelled" in cancelled.text
        again = client.post(
            f"/ui/notices/{block}/close", data={"csrf": csrf, "status": "cancelled"}
        )
        assert again.status_code == 409 and "already cancelled" in again.text
        # the list: filters and rechecks due
        send_manually(hs, client, csrf, new_id)
        with hs.db.session() as s:
            s.execute(
                update(Notice)
                .where(Notice.id == new_id)
                .values(next_check_at=utcnow() - timedelta(minutes=5))
            )
        due = client.get("/ui/notices?due=true").text
        assert f'href="/ui/notices/{new_id}"' in due and f'href="/ui/notices/{block}"' not in due
        assert "1 recheck due" in due
        listed = client.get("/ui/notices?status=cancelled").text
        assert (
            f'href="/ui/notices/{block}"' in listed and f'href="/ui/notices/{new_id}"' not in listed
        )
        assert client.get("/ui/notices?status=bogus").status_code == 422
        assert "recheck due" in client.get(f"/ui/cases/{r.case_id}/complaint", headers=HTMX).text


def test_blocklist_downloads_are_audited(h: Hotline) -> None:
    r = h.report(urls="https://bad.example.net/x/y\nhttps://cdn.evil-host.example.com/z")
    with h.client() as client:
        csrf = login(client, "rita")
        one = draft(client, csrf, r.case_id, url_id(h, r.case_id, "bad.example.net"), "block-url")
        host = draft(
            client,
            csrf,
            r.case_id,
            url_id(h, r.case_id, "cdn.evil-host.example.com"),
            "block-host",
        )
        assert "Nothing is blocked" in client.get("/ui/blocklist").text  # drafts do not count
        send_manually(h, client, csrf, one)
        send_manually(h, client, csrf, host)
        page = client.get("/ui/blocklist").text
        assert "https://bad.example.net/x/y" in page and "cdn.evil-host.example.com" in page
        assert "whole host" in page

        plain = client.get("/ui/blocklist?format=plain")
        assert plain.status_code == 200
        assert plain.headers["content-type"].startswith("text/plain")
        assert plain.headers["content-disposition"] == 'attachment; filename="blocklist.txt"'
        lines = plain.text.splitlines()
        assert "https://bad.example.net/x/y" in lines and "cdn.evil-host.example.com" in lines
        assert lines[0].startswith("#")

        rpz = client.get("/ui/blocklist?format=rpz&zone=rpz.hotline.example").text
        assert "@ IN SOA localhost. hostmaster.rpz.hotline.example." in rpz
        assert "cdn.evil-host.example.com CNAME ." in rpz
        assert "*.cdn.evil-host.example.com CNAME ." in rpz
        assert "bad.example.net CNAME ." not in rpz  # a URL block is not a host block
        wide = client.get(
            "/ui/blocklist?format=rpz&zone=rpz.hotline.example&include_url_hosts=true"
        ).text
        assert "bad.example.net CNAME ." in wide

        bad = client.get("/ui/blocklist?format=rpz&zone=not%20a%20zone!")
        assert bad.status_code == 422 and "Invalid RPZ zone name" in bad.text
        assert client.get("/ui/blocklist?format=exe").status_code == 422
        # removing a block takes it off the list
        client.post(f"/ui/notices/{one}/check", data={"csrf": csrf, "result": "gone"})
        assert "bad.example.net" not in client.get("/ui/blocklist?format=plain").text
    exports = h.svc.audit.list(action="export", actor="user:rita")
    assert [e.object_type for e in exports] == ["blocklist"] * 4
    assert {e.details["format"] for e in exports} == {"plain", "rpz"}
    assert any(e.details.get("include_url_hosts") for e in exports)


# --- templates and host contacts -------------------------------------------------------


HOSTILE_TEMPLATES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ 1/0 }}",
    "{{ url + 1 }}",
    "{% for x in () %}",
]


def test_template_edit_preview_save_reset(h: Hotline) -> None:
    key = {"kind": "takedown", "jurisdiction": "default", "language": "en"}
    with h.client() as client:
        csrf = login(client, "leo")
        editor = client.get("/ui/notice-templates?kind=takedown&jurisdiction=default&language=en")
        assert editor.status_code == 200
        for name in ("reference", "url", "host", "domain", "category", "operator_name"):
            assert f"<code>{name}</code>" in editor.text
        # preview with the sample values (htmx fragment, and without htmx a whole page)
        form = {**key, "subject": "Remove {{ host }}", "body": "Ref {{ reference }}: {{ url }}"}
        p = client.post("/ui/notice-templates/preview", data=form, headers=hx(csrf))
        assert p.status_code == 200
        assert "Ref SH-1: https://files.example.org/a/b.jpg" in p.text
        assert "Remove files.example.org" in p.text
        p = client.post("/ui/notice-templates/preview", data={**form, "csrf": csrf})
        assert p.status_code == 200 and "<html" in p.text and "Ref SH-1" in p.text
        # what could run code (or break) is refused by the sandbox, and nothing is saved
        for body in HOSTILE_TEMPLATES:
            p = client.post(
                "/ui/notice-templates/preview", data={**form, "body": body}, headers=hx(csrf)
            )
            assert p.status_code == 200 and 'data-testid="preview-error"' in p.text, body
            assert "cannot be used" in p.text, body
            s = client.post("/ui/notice-templates/save", data={**form, "body": body, "csrf": csrf})
            assert s.status_code == 422, body
            assert "cannot be used" in s.text and "<class" not in s.text, body
        assert all(t.builtin for t in h.svc.templates.list("default"))
        # save, and a new notice uses it
        saved = client.post(
            "/ui/notice-templates/save", data={**form, "csrf": csrf}, follow_redirects=False
        )
        assert saved.status_code == 303 and "done=saved" in saved.headers["location"]
        page = client.get(saved.headers["location"]).text
        assert "Template saved" in page and "Reset to built-in" in page
        r = h.report()
        nid = draft(client, csrf, r.case_id, url_id(h, r.case_id, "files.example.org"), "takedown")
        assert h.svc.notices.get(nid, "default").body == f"Ref SH-{r.case_id}: {URL}"
        # reset to the built-in one
        reset = client.post(
            "/ui/notice-templates/reset", data={**key, "csrf": csrf}, follow_redirects=False
        )
        assert "done=reset" in reset.headers["location"]
        assert h.svc.templates.get("default", "takedown", "default", "en").builtin
        # a template for a new jurisdiction
        new = {"kind": "block", "jurisdiction": "AU", "language": "en"}
        assert (
            "New: it starts from block / default / en"
            in client.get("/ui/notice-templates?kind=block&jurisdiction=AU&language=en").text
        )
        client.post(
            "/ui/notice-templates/save",
            data={**new, "subject": "Block {{ host }}", "body": "Please block.", "csrf": csrf},
        )
        assert not h.svc.templates.get("default", "block", "AU", "en").builtin
        assert client.get("/ui/notice-templates?kind=nope").status_code == 422
    changes = h.svc.audit.list(action="template_change", actor="user:leo")
    assert [e.details["change"] for e in reversed(changes)] == ["save", "reset", "save"]


def test_host_contacts_csv_import_and_edit(h: Hotline) -> None:
    csv_text = (
        "domain,name,email,abuse_url,jurisdiction,notes\n"
        "example.co.uk,Example Hosting,abuse@hosting.example,,NZ,\n"
        "shop.example.co.uk,Shop Ltd,takedown@shop.example,https://shop.example/abuse,default,vip\n"
    )
    with h.client() as client:
        csrf = login(client, "leo")
        r = client.post(
            "/ui/hosts/import", data={"csrf": csrf, "csv_text": csv_text}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/hosts?done=imported&count=2"
        page = client.get(r.headers["location"]).text
        assert "2 contacts imported" in page and "Shop Ltd" in page and "example.co.uk" in page
        # a file upload, with one bad row: nothing is imported
        bad = "domain,name\nokay.example,Fine\nnot a domain!,Broken\n"
        r = client.post(
            "/ui/hosts/import",
            data={"csrf": csrf},
            files={"file": ("hosts.csv", bad.encode(), "text/csv")},
        )
        assert r.status_code == 422 and "Row 2: not a domain name" in r.text
        assert "okay.example" not in [c.domain for c in h.svc.contacts.list("default")]
        good = b"\xef\xbb\xbfthird.example,Third,abuse@third.example,,default,\n"
        r = client.post(
            "/ui/hosts/import",
            data={"csrf": csrf},
            files={"file": ("hosts.csv", good, "text/csv")},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "count=1" in r.headers["location"]
        r = client.post("/ui/hosts/import", data={"csrf": csrf, "csv_text": ""})
        assert r.status_code == 422
        # add / edit / delete one
        r = client.post(
            "/ui/hosts",
            data={"csrf": csrf, "domain": "example.org", "name": "Ex", "email": "abuse@ex.example"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        edit = client.get("/ui/hosts?edit=example.org").text
        assert 'value="abuse@ex.example"' in edit
        r = client.post(
            "/ui/hosts",
            data={"csrf": csrf, "domain": "example.org", "email": "not-an-address"},
        )
        assert r.status_code == 422 and "does not look like one" in r.text
        r = client.post(
            "/ui/hosts", data={"csrf": csrf, "domain": "example.org", "abuse_url": "ftp://x"}
        )
        assert r.status_code == 422 and "https://" in r.text
        # a notice for a host on the list goes to its contact (not a guess)
        rep = h.report(urls="https://cdn.shop.example.co.uk/p/1")
        nid = draft(
            client, csrf, rep.case_id, url_id(h, rep.case_id, "cdn.shop.example.co.uk"), "takedown"
        )
        n = h.svc.notices.get(nid, "default")
        assert n.recipient_email == "takedown@shop.example" and not n.recipient_guessed
        assert "From the host contacts list" in client.get(f"/ui/notices/{nid}").text
        r = client.post(
            "/ui/hosts/delete", data={"csrf": csrf, "domain": "example.org"}, follow_redirects=False
        )
        assert r.status_code == 303
        assert (
            client.post(
                "/ui/hosts/delete", data={"csrf": csrf, "domain": "example.org"}
            ).status_code
            == 404
        )
    assert {c.domain for c in h.svc.contacts.list("default")} == {
        "example.co.uk",
        "shop.example.co.uk",
        "third.example",
    }
    assert h.svc.audit.list(action="host_contact_change", actor="user:leo")


# --- roles -----------------------------------------------------------------------------


def test_roles(h: Hotline) -> None:
    r = h.report(
        contact={"name": "Pat Reporter", "email": "pat@example.org", "phone": "+64 21 555 0100"},
        description="Pictures on a file host",
    )
    leo = h.user("leo")
    nid = h.svc.notices.draft(r.case_id, leo, kind="takedown", url=URL).id
    h.svc.reports.message(r.report_id, leo, "We are looking into it.")
    base = f"/ui/cases/{r.case_id}/complaint"
    with h.client() as rita:
        csrf = login(rita, "rita")
        for path in ("/ui/notice-templates", "/ui/hosts"):
            page = rita.get(path)
            assert page.status_code == 403 and "Not allowed" in page.text, path
        assert (
            rita.post(
                "/ui/notice-templates/save",
                data={
                    "csrf": csrf,
                    "kind": "takedown",
                    "jurisdiction": "default",
                    "language": "en",
                    "subject": "x",
                    "body": "y",
                },
            ).status_code
            == 403
        )
        assert rita.post("/ui/hosts", data={"csrf": csrf, "domain": "x.example"}).status_code == 403
        assert (
            rita.post("/ui/hosts/import", data={"csrf": csrf, "csv_text": "a.example"}).status_code
            == 403
        )
        nav = rita.get("/ui/notices").text
        assert 'href="/ui/hosts"' not in nav and 'href="/ui/notice-templates"' not in nav
        # reviewers see the contact details and work the complaint
        panel = rita.get(base, headers=HTMX).text
        for detail in ("Pat Reporter", "pat@example.org", "+64 21 555 0100"):
            assert detail in panel
        assert "Start investigation" in panel and "Send message" in panel
        # only leads reopen
        rita.post(f"{base}/resolve", data={"outcome": "advice_given"}, headers=hx(csrf))
        assert (
            rita.post(f"{base}/reopen", data={"reason": "x"}, headers=hx(csrf)).status_code == 403
        )
    with h.client() as leo_client:
        login(leo_client, "leo")
        assert leo_client.get("/ui/notice-templates").status_code == 200
        assert leo_client.get("/ui/hosts").status_code == 200
    with h.client() as aude:
        csrf = login(aude, "aude")
        readable = [
            "/ui/complaints",
            f"/ui/cases/{r.case_id}",
            base,
            "/ui/notices",
            f"/ui/notices/{nid}",
            "/ui/blocklist",
            "/ui/notice-templates",
            "/ui/notice-templates?kind=takedown&jurisdiction=NZ&language=en",
            "/ui/hosts",
        ]
        for path in readable:
            page = aude.get(path)
            assert page.status_code == 200, path
            for detail in ("Pat Reporter", "pat@example.org", "555 0100"):
                assert detail not in page.text, (path, detail)
        panel = aude.get(base, headers=HTMX).text
        assert "We are looking into it." in panel  # messages are read, contact is not
        assert "<form" not in panel and "Start investigation" not in panel
        main = aude.get(f"/ui/notices/{nid}").text.split('id="main"')[1].split("</main>")[0]
        assert "<form" not in main
        templates = aude.get("/ui/notice-templates?kind=takedown&jurisdiction=NZ&language=en")
        assert 'action="/ui/notice-templates/save"' not in templates.text
        assert 'action="/ui/hosts' not in aude.get("/ui/hosts").text
        refused = [
            ("/ui/complaints/next", {}),
            (f"{base}/investigate", {}),
            (f"{base}/resolve", {"outcome": "advice_given"}),
            (f"{base}/reopen", {"reason": "x"}),
            (f"{base}/recategorise", {"category": "other"}),
            (f"{base}/reports/{r.report_id}/message", {"body": "hello"}),
            (f"{base}/notices", {"url_id": "1", "what": "takedown"}),
            (f"/ui/notices/{nid}/edit", {"subject": "x", "body": "y", "then": "manual"}),
            (f"/ui/notices/{nid}/send", {"via": "manual"}),
            (f"/ui/notices/{nid}/check", {"result": "gone"}),
            (f"/ui/notices/{nid}/close", {"status": "cancelled"}),
            (f"/ui/notices/{nid}/redraft", {"jurisdiction": "NZ", "language": "en"}),
            (
                "/ui/notice-templates/preview",
                {
                    "kind": "takedown",
                    "jurisdiction": "NZ",
                    "language": "en",
                    "subject": "s",
                    "body": "b",
                },
            ),
            (
                "/ui/notice-templates/save",
                {
                    "kind": "takedown",
                    "jurisdiction": "NZ",
                    "language": "en",
                    "subject": "s",
                    "body": "b",
                },
            ),
            (
                "/ui/notice-templates/reset",
                {"kind": "takedown", "jurisdiction": "NZ", "language": "en"},
            ),
            ("/ui/hosts", {"domain": "x.example"}),
            ("/ui/hosts/delete", {"domain": "x.example"}),
            ("/ui/hosts/import", {"csv_text": "x.example"}),
        ]
        for path, form in refused:
            res = aude.post(path, data={**form, "csrf": csrf})
            assert res.status_code == 403, path
    case = h.svc.cases.get(r.case_id).case
    assert case.stage == "resolved"
    assert h.svc.notices.get(nid, "default").status == "draft"
    assert not [
        e
        for e in h.svc.audit.list(actor="user:aude", limit=500)
        if e.action not in ("login", "view_case", "export")
    ]


def test_hostile_report_fields_are_escaped_everywhere(h: Hotline) -> None:
    script = "<script>alert(1)</script>"
    rlo = "\u202eevil"
    r = h.report(
        urls='https://files.example.org/<script>alert(4)</script>?q="><img/src=x>',
        description=f"{script} and {rlo}\nsecond line",
        platform='"><img src=x onerror=alert(2)>',
        username=f"<b>bold</b>{rlo}",
        contact={"name": "<i>Pat</i>", "email": "pat@example.org"},
    )
    leo = h.user("leo")
    h.svc.reports.message(r.report_id, leo, "<svg onload=alert(3)>")
    h.svc.contacts.put(
        "default", domain="example.org", name="<script>host()</script>", notes="<u>x</u>"
    )
    with h.client() as client:
        login(client, "leo")
        case_id = r.case_id
        uid = url_id(h, case_id, "files.example.org")
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/ui/me").text)
        assert csrf
        nid = draft(client, csrf.group(1), case_id, uid, "takedown")
        pages = {
            "list": client.get("/ui/complaints").text,
            "case": client.get(f"/ui/cases/{case_id}").text,
            "panel": client.get(f"/ui/cases/{case_id}/complaint", headers=HTMX).text,
            "page": client.get(f"/ui/cases/{case_id}/complaint").text,
            "notice": client.get(f"/ui/notices/{nid}").text,
            "notices": client.get("/ui/notices").text,
            "hosts": client.get("/ui/hosts").text,
        }
        for name, html in pages.items():
            for raw in (
                "<script>alert",
                "<img src=x",
                "<img/src",
                "<svg onload",
                "<b>bold",
                "<i>Pat",
                "<script>host",
                "<u>x",
            ):
                assert raw not in html, (name, raw)
        panel = pages["panel"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in panel
        assert "&lt;svg onload=alert(3)&gt;" in panel
        assert "&lt;i&gt;Pat&lt;/i&gt;" in panel
        # right-to-left overrides stay inside their <bdi>
        for found in re.finditer("\u202e", panel):
            before = panel[: found.start()]
            assert before.rfind("<bdi") > before.rfind("</bdi>")
        assert "&lt;script&gt;host()&lt;/script&gt;" in pages["hosts"]
        assert "&lt;script&gt;host()&lt;/script&gt;" in pages["notice"]
        assert "&#34;&gt;&lt;img" in pages["list"]  # the platform, escaped in the list too

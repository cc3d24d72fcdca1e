"""Notices: templates in a sandbox, host contacts, the notice lifecycle with rechecks,
e-mail through a real local SMTP server, and the URL block list (plain and RPZ)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import update
from tests.intake_helpers import Hotline, cheap_hashing, hotline
from tests.job_helpers import wait_for
from tests.live_server import free_port

from safehold.errors import Conflict, InvalidValue, NotFound
from safehold.intake import blocklist
from safehold.intake.notices import check_url, recheck_delay
from safehold.jobs import Jobs
from safehold.store import Database
from safehold.store.models import Notice, utcnow
from safehold.web.service import Service


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@pytest.fixture()
def h(db: Database) -> Hotline:
    return hotline(db)


# --------------------------------------------------------------------------- templates


def test_builtin_templates_for_every_kind_and_fallbacks(h: Hotline) -> None:
    t = h.svc.templates
    keys = {(x.kind, x.jurisdiction, x.language) for x in t.list("default")}
    assert {
        ("takedown", "default", "en"),
        ("takedown", "default", "ms"),
        ("block", "MY", "ms"),
    } <= keys
    assert t.get("default", "takedown", "NZ", "ms").language == "en"  # NZ has no Malay one
    assert t.get("default", "takedown", "FR", "ms").jurisdiction == "default"
    assert t.get("default", "block", "MY", "ms").body.startswith("Kepada")


def test_saved_template_replaces_builtin_and_reset_restores(h: Hotline) -> None:
    t = h.svc.templates
    lee = h.people["lee"]
    t.save(
        "default",
        kind="takedown",
        jurisdiction="default",
        language="en",
        subject="Please remove {{ url }}",
        body="Ref {{ reference }} for {{ host }}",
        by=lee,
    )
    r = h.report(urls="https://files.example.org/x")
    n = h.svc.notices.draft(r.case_id, lee, kind="takedown", url="https://files.example.org/x")
    assert n.subject == "Please remove https://files.example.org/x"
    assert n.body == f"Ref SH-{r.case_id} for files.example.org"
    assert t.reset("default", kind="takedown", jurisdiction="default", language="en", by=lee)
    assert t.get("default", "takedown", "default", "en").builtin


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% for x in () %}",
        "{{ no_such_filter | nope }}",
        "{{ url * 100000000 }}",
        "{{ 'x' * 10**9 }}",
        "{{ url.ljust(10**9) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(1000) %}{{ url }}{{ url }}{{ url }}{{ url }}{{ url }}{% endfor %}",
        "{{ 1/0 }}",
    ],
)
def test_templates_that_could_run_code_or_break_are_refused(h: Hotline, body: str) -> None:
    with pytest.raises(InvalidValue, match="template cannot be used"):
        h.svc.templates.save(
            "default",
            kind="takedown",
            jurisdiction="default",
            language="en",
            subject="s",
            body=body,
            by=h.people["lee"],
        )


# --------------------------------------------------------------------------- contacts


def test_contacts_most_specific_first_and_csv_import(h: Hotline) -> None:
    c = h.svc.contacts
    n = c.import_csv(
        "default",
        "domain,name,email,abuse_url,jurisdiction,notes\n"
        "example.co.uk,Example Hosting,abuse@hosting.example,,NZ,\n"
        "shop.example.co.uk,Shop Ltd,takedown@shop.example,https://shop.example/abuse,default,vip\n",
        by=h.people["lee"],
    )
    assert n == 2
    assert c.lookup("default", "cdn.shop.example.co.uk").name == "Shop Ltd"
    assert c.lookup("default", "www.example.co.uk").name == "Example Hosting"
    assert c.lookup("default", "example.org") is None
    with pytest.raises(InvalidValue, match="row 1"):
        c.import_csv("default", "not a domain!,x,y\n")
    assert len(c.list("default")) == 2
    assert c.delete("default", "example.co.uk", by=h.people["lee"])
    assert len(c.list("default")) == 1


# --------------------------------------------------------------------------- notices


def test_notice_lifecycle_with_manual_rechecks(h: Hotline) -> None:
    h.svc.contacts.put(
        "default",
        domain="example.com",
        name="Example Inc",
        email="abuse@ex.example",
        jurisdiction="NZ",
    )
    r = h.report(urls="https://www.example.com/bad")
    rita = h.people["rita"]
    url_id = h.svc.reports.get(r.report_id, "default").urls[0].id
    n = h.svc.notices.draft(r.case_id, rita, kind="takedown", url_id=url_id)
    assert (
        n.status == "draft" and n.recipient_email == "abuse@ex.example" and n.jurisdiction == "NZ"
    )
    assert "Harmful Digital Communications Act" in n.body and not n.recipient_guessed
    n = h.svc.notices.edit(n.id, rita, subject="Takedown please")
    assert n.subject == "Takedown please"
    with pytest.raises(Conflict, match="e-mail is not configured"):
        h.svc.notices.send(n.id, rita, via="email")
    n = h.svc.notices.send(n.id, rita, via="manual")
    assert n.status == "sent" and n.next_check_at is not None and n.sent_via == "manual"
    with pytest.raises(Conflict, match="only drafts"):
        h.svc.notices.edit(n.id, rita, subject="x")
    n = h.svc.notices.record_check(n.id, rita, result="up")
    assert n.status == "sent" and n.checks == 1
    assert n.next_check_at is not None and n.last_check_at is not None
    assert n.next_check_at - n.last_check_at == recheck_delay(1) == timedelta(hours=48)
    n = h.svc.notices.record_check(n.id, rita, result="gone")
    assert n.status == "removed" and n.closed_by == "user:rita" and n.next_check_at is None
    assert [x.id for x in h.svc.notices.for_case(r.case_id, "default")] == [n.id]
    actions = [e.action for e in h.svc.audit.list(object_type="notice", object_id=str(n.id))]
    assert set(actions) >= {"notice_draft", "notice_edit", "notice_sent", "notice_check"}


def test_guessed_recipient_and_bad_drafts(h: Hotline) -> None:
    r = h.report(urls="https://bad.example.net/x")
    rita = h.people["rita"]
    n = h.svc.notices.draft(r.case_id, rita, kind="takedown", url="https://bad.example.net/x")
    assert n.recipient_email == "abuse@example.net" and n.recipient_guessed
    with pytest.raises(InvalidValue, match="scope url"):
        h.svc.notices.draft(
            r.case_id, rita, kind="takedown", url="https://bad.example.net/x", scope="host"
        )
    with pytest.raises(InvalidValue, match="unknown notice kind"):
        h.svc.notices.draft(r.case_id, rita, kind="threat", url="https://bad.example.net/x")
    with pytest.raises(NotFound):
        h.svc.notices.draft(r.case_id, rita, kind="block", url_id=999_999)
    with pytest.raises(InvalidValue, match="not a URL"):
        h.svc.notices.draft(r.case_id, rita, kind="block", url="ftp://x")
    assert h.svc.notices.close(n.id, rita, status="cancelled").status == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        h.svc.notices.close(n.id, rita, status="removed")


def test_due_rechecks_are_listed(h: Hotline) -> None:
    r = h.report()
    rita = h.people["rita"]
    n = h.svc.notices.send(
        h.svc.notices.draft(r.case_id, rita, kind="takedown", url="https://example.com/a").id,
        rita,
        via="manual",
    )
    assert h.svc.notices.list("default", due=True)[0] == []
    with h.db.session() as s:
        s.execute(update(Notice).values(next_check_at=utcnow() - timedelta(minutes=1)))
    due, _ = h.svc.notices.list("default", due=True)
    assert [x.id for x in due] == [n.id] and due[0].check_due
    assert [x.id for x in h.svc.notices.due()] == [n.id]


# --------------------------------------------------------------------------- block list


def test_blocklist_plain_and_rpz(h: Hotline) -> None:
    r = h.report(urls="https://a.example.org/x https://b.example.org/y http://192.0.2.7/z")
    lee = h.people["lee"]
    for url, scope in [
        ("https://a.example.org/x", "url"),
        ("https://b.example.org/y", "host"),
        ("http://192.0.2.7/z", "host"),
    ]:
        n = h.svc.notices.draft(r.case_id, lee, kind="block", url=url, scope=scope)
        h.svc.notices.send(n.id, lee, via="manual")
    draft = h.svc.notices.draft(
        r.case_id, lee, kind="block", url="https://c.example.org/", scope="host"
    )
    plain = blocklist.export(h.db, "default", "plain")
    lines = [x for x in plain.splitlines() if not x.startswith("#")]
    assert lines == ["https://a.example.org/x", "b.example.org", "192.0.2.7"]
    rpz = blocklist.export(h.db, "default", "rpz", zone="rpz.hotline.example")
    assert "b.example.org CNAME .\n*.b.example.org CNAME .\n" in rpz
    assert "a.example.org" not in rpz and "192.0.2.7" not in rpz and "c.example.org" not in rpz
    assert "hostmaster.rpz.hotline.example." in rpz and "$TTL" in rpz
    wide = blocklist.export(h.db, "default", "rpz", include_url_hosts=True)
    assert "a.example.org CNAME ." in wide
    h.svc.notices.close(blocklist.entries(h.db, "default")[1].notice_id, lee, status="removed")
    assert "b.example.org" not in blocklist.export(h.db, "default", "plain")
    assert draft.status == "draft"
    with pytest.raises(InvalidValue, match="RPZ zone"):
        blocklist.export(h.db, "default", "rpz", zone="bad zone;rm")
    with pytest.raises(InvalidValue, match="unknown block list format"):
        blocklist.export(h.db, "default", "csv")


# --------------------------------------------------------------------------- rechecks over HTTP


class _Status(BaseHTTPRequestHandler):
    codes: ClassVar[dict[str, int]] = {
        "/up": 200,
        "/gone": 404,
        "/legal": 451,
        "/moved": 301,
        "/broken": 500,
    }
    seen: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        self.seen.append(self.command + " " + self.path)
        self.send_response(self.codes.get(self.path, 200))
        if self.path == "/moved":
            self.send_header("Location", "/elsewhere")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def status_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_check_url_heads_without_downloading(status_server: str) -> None:
    _Status.seen.clear()
    assert check_url(f"{status_server}/up") == "up"
    assert check_url(f"{status_server}/gone") == "gone"
    assert check_url(f"{status_server}/legal") == "gone"
    assert check_url(f"{status_server}/moved") == "up"
    assert check_url(f"{status_server}/broken") == "error: HTTP 500"
    assert check_url(f"http://127.0.0.1:{free_port()}/refused").startswith("error:")
    assert all(s.startswith("HEAD ") for s in _Status.seen)


def test_recheck_job_confirms_removal(
    h: Hotline, status_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.intake.tasks import recheck_notices

    monkeypatch.setenv("SAFEHOLD_RECHECK", "http")
    r = h.report(urls=f"{status_server}/gone {status_server}/up")
    lee = h.people["lee"]
    ids = []
    for path in ("/gone", "/up"):
        n = h.svc.notices.draft(r.case_id, lee, kind="takedown", url=status_server + path)
        ids.append(h.svc.notices.send(n.id, lee, via="manual").id)
    with h.db.session() as s:
        s.execute(update(Notice).values(next_check_at=utcnow() - timedelta(seconds=1)))
    recheck_notices(h.svc.job_context())
    gone, up = (h.svc.notices.get(i, "default") for i in ids)
    assert gone.status == "removed" and gone.closed_by == "system:recheck"
    assert up.status == "sent" and up.checks == 1 and up.last_check_result == "up"


# --------------------------------------------------------------------------- e-mail


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture()
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("SAFEHOLD_SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SAFEHOLD_MAIL_FROM", "hotline@safehold.example")
    monkeypatch.setenv("SAFEHOLD_PUBLIC_URL", "https://report.hotline.example")
    try:
        yield inbox
    finally:
        controller.stop()


def test_notices_and_reporter_notes_are_emailed(db: Database, smtp: _Inbox) -> None:
    svc = Service.open(db, queue_url="memory://?immediate=1")
    svc.start_background(worker=False)
    try:
        from safehold.access.users import Users
        from safehold.intake import NewReport

        lee = Users(db, svc.audit).create("lee", "correct horse battery staple", "lead")
        r = svc.reports.submit(
            NewReport(
                category="other",
                urls="https://x.example.com/p",
                contact={"email": "reporter@example.org"},
                language="ms",
            )
        )
        n = svc.notices.draft(r.case_id, lee, kind="takedown", url="https://x.example.com/p")
        sent = svc.notices.send(n.id, lee, via="email")
        assert sent.status == "queued"
        wait_for(lambda: svc.notices.get(n.id, "default").status == "sent")
        assert svc.notices.get(n.id, "default").sent_via == "email"
        msg = svc.reports.message(r.report_id, lee, "We asked the host to remove it.")
        assert msg.email_status == "queued"
        wait_for(lambda: len(smtp.messages) == 2)
        to_host, to_reporter = smtp.messages
        assert to_host.rcpt_tos == ["abuse@example.com"]
        assert b"Takedown request SH-" in to_host.content
        assert to_reporter.rcpt_tos == ["reporter@example.org"]
        body = to_reporter.content.decode()
        assert "Mesej" in body and "https://report.hotline.example/report/status" in body
        assert (
            "We asked the host" not in body
        )  # only a notice: the message is read with the receipt
        status = svc.reports.status(r.display_number, r.secret)
        assert status.messages[0].email_status == "sent"
    finally:
        svc.stop_background()
        svc.jobs.close()


def test_a_failing_mail_server_keeps_the_notice_queued(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    svc = Service.open(db, queue_url="memory://?immediate=1")
    svc.jobs = Jobs.from_url("memory://?immediate=1", db.url)
    svc.notices.jobs = svc.jobs
    svc.start_background(worker=False)
    try:
        from safehold.access.users import Users
        from safehold.intake import NewReport

        lee = Users(db, svc.audit).create("lee", "correct horse battery staple", "lead")
        r = svc.reports.submit(NewReport(category="other", urls="https://y.example.com/p"))
        n = svc.notices.draft(r.case_id, lee, kind="takedown", url="https://y.example.com/p")
        svc.notices.send(n.id, lee, via="email")
        after = svc.notices.get(n.id, "default")
        assert after.status == "queued" and after.email_error
        assert svc.notices.send(n.id, lee, via="manual").status == "sent"
    finally:
        svc.stop_background()
        svc.jobs.close()

"""Reports: receipts, validation, triage into complaint cases, status, add, withdraw."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.intake_helpers import Hotline, cheap_hashing, hotline
from tests.media_factory import photo_like, write_image

from safehold.banks.entries import make_entry
from safehold.errors import Conflict, InvalidValue, Unauthorized, UnsupportedFormat
from safehold.hashing import hash_file
from safehold.intake import NewReport, ReportFile, receipts
from safehold.store import Database
from safehold.store.models import Case, Report, ReportUrl


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@pytest.fixture()
def h(db: Database) -> Hotline:
    return hotline(db)


def test_receipt_format_and_forgiving_input() -> None:
    number = receipts.new_number("report")
    shown = receipts.display_number(number)
    assert len(number) == 9 and number[0] == "R" and shown.count("-") == 2
    assert receipts.normalize_number(shown.lower().replace("-", " ")) == number
    secret = receipts.new_secret()
    typed = secret.lower().replace("-", "").replace("0", "o").replace("1", "l")
    assert receipts.normalize_secret(typed) == secret
    assert receipts.normalize_number("R-0000") is None
    assert receipts.normalize_secret("x" * 10_000) is None


def test_submit_gives_a_receipt_and_a_complaint_case(h: Hotline) -> None:
    r = h.report(
        urls="https://Example.com/a?utm_source=mail\nwww.other.example.org/page",
        platform="ExampleChat",
        username="someone_123",
        description="Pictures of a child were posted here.",
        demographics={
            "age_band": "13_15",
            "gender": "female",
            "country": "nz",
            "relation": "parent",
        },
        contact={"email": "parent@example.org"},
    )
    info = h.svc.reports.get(r.report_id, "default")
    assert info.category == "child_sexual_abuse" and info.source == "public_report"
    assert info.demographics == {
        "age_band": "13_15",
        "gender": "female",
        "country": "NZ",
        "relation": "parent",
    }
    assert {u.canonical for u in info.urls} == {
        "https://example.com/a",
        "http://www.other.example.org/page",
    }
    assert {u.domain for u in info.urls} == {"example.com", "example.org"}
    case = h.svc.cases.get(r.case_id).case
    assert case.kind == "complaint" and case.stage == "assess" and case.state == "new"
    assert case.queue == "reports-csam" and "csam" in case.labels
    with h.db.session() as s:  # only the argon2 hash of the secret is stored
        row = s.get(Report, r.report_id)
        assert row is not None and r.secret not in row.secret_hash
        assert row.secret_hash.startswith("$argon2")


def test_status_needs_the_right_secret(h: Hotline) -> None:
    r = h.report()
    status = h.svc.reports.status(r.display_number, r.secret)
    assert status.state == "received" and status.urls == 1 and status.can_withdraw
    for number, secret in [
        (r.display_number, receipts.new_secret()),
        ("R-0000-0000", r.secret),
        ("not a number", "not a secret"),
        (None, None),
        ("\x00" * 50, "\u202e" * 10),
    ]:
        with pytest.raises(Unauthorized, match="report number or the secret is wrong"):
            h.svc.reports.status(number, secret)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category", "no-such", "unknown report category"),
        ("description", "x" * 10_001, "too long"),
        ("description", "a\x00b", "NUL"),
        ("urls", "javascript:alert(1)", "not a web address"),
        ("urls", " ".join(f"https://e.example/{i}" for i in range(21)), "at most 20"),
        ("demographics", {"age_band": "ancient"}, "age_band must be one of"),
        ("demographics", {"favourite": "x"}, "unknown demographic"),
        ("demographics", {"country": "Atlantis"}, "two-letter region code"),
        ("contact", {"email": "not-an-email"}, "does not look like one"),
        ("contact", {"phone": "<script>"}, "phone number"),
        ("contact", {"address": "x"}, "unknown contact fields"),
        ("platform", "p" * 201, "too long"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(
    h: Hotline, field: str, value: object, message: str
) -> None:
    kw: dict[str, object] = {field: value}
    with pytest.raises(InvalidValue, match=message):
        h.report(**kw)
    with h.db.session() as s:  # nothing half-written
        assert s.scalar(select(func.count()).select_from(Report)) == 0
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_an_empty_report_is_refused(h: Hotline) -> None:
    with pytest.raises(InvalidValue, match="the report is empty"):
        h.report(urls="", description="   ")


def test_hostile_text_is_kept_as_text(h: Hotline) -> None:
    hostile = '<script>alert(1)</script> "><img src=x onerror=alert(1)> \u202eevil ../../etc/passwd'
    r = h.report(description=hostile, username=hostile[:200], platform="../../etc/passwd")
    info = h.svc.reports.get(r.report_id, "default")
    assert info.description == hostile  # stored as given; every page escapes it
    assert info.platform == "../../etc/passwd"


def test_same_url_joins_the_case_and_is_flagged_duplicate(h: Hotline) -> None:
    a = h.report(urls="https://example.com/a")
    b = h.report(category="grooming", urls="HTTPS://EXAMPLE.com/a?utm_campaign=x")
    c = h.report(urls="https://example.com/other")
    assert a.case_id == b.case_id != c.case_id
    assert h.svc.reports.get(b.report_id, "default").flags == ["duplicate"]
    assert h.svc.reports.get(c.report_id, "default").flags == []
    case = h.svc.cases.get(a.case_id).case
    assert set(case.labels) >= {"csam", "dsa:KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS"}
    assert [x.number for x in h.svc.reports.for_case(a.case_id, "default")] == [a.number, b.number]


def test_a_url_reported_after_its_case_was_resolved_opens_a_new_case(h: Hotline) -> None:
    a = h.report()
    h.svc.complaints.resolve(a.case_id, h.people["rita"], outcome="removed_by_host")
    b = h.report()
    assert b.case_id != a.case_id
    assert h.svc.reports.get(b.report_id, "default").flags == ["reported_before"]


def test_same_file_joins_the_case_and_bank_matches_raise_priority(
    h: Hotline, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "p.png", photo_like(320, 240, seed=5), "png")
    hashes = hash_file(picture)
    h.svc.banks.create("known")
    assert hashes.pdq is not None
    h.svc.banks.add("known", [make_entry("pdq", hashes.pdq, ["A1"], source="ncmec")])
    h.svc.replica.start()
    try:
        a = h.report(
            category="other",
            urls="",
            description="this picture",
            files=[ReportFile(picture, "p.png")],
        )
        b = h.report(category="other", urls="", description="again", files=[ReportFile(picture)])
    finally:
        h.svc.replica.stop()
    assert a.case_id == b.case_id
    case = h.svc.cases.get(a.case_id)
    assert case.case.queue == "reports-csam" and case.case.priority == 100
    assert "A1" in case.case.labels
    items = [i for i in case.items if i.report_id is not None]
    assert len(items) == 2 and items[0].media_id is not None
    assert items[0].matches[0]["bank"] == "known" and items[0].signals["pdq"] == hashes.pdq
    assert h.svc.reports.get(b.report_id, "default").flags == ["duplicate"]


def test_a_file_that_is_not_media_is_refused(h: Hotline, tmp_path: Path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"MZ\x90\x00 this is not a picture")
    with pytest.raises(UnsupportedFormat):
        h.report(files=[ReportFile(bad, "x.jpg")])
    with h.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Report)) == 0


def test_intimate_images_of_a_minor_go_to_the_csam_queue(h: Hotline) -> None:
    adult = h.report(category="intimate_images", urls="https://a.example/1")
    minor = h.report(
        category="intimate_images", urls="https://a.example/2", demographics={"age_band": "16_17"}
    )
    assert h.svc.cases.get(adult.case_id).case.queue == "reports-ncii"
    minor_case = h.svc.cases.get(minor.case_id).case
    assert minor_case.queue == "reports-csam" and "csam" in minor_case.labels


def test_spam_is_flagged_and_queued_apart(h: Hotline) -> None:
    links = " ".join(f"http://spam{i}.example/" for i in range(12))
    r = h.report(category="other", urls="", description="buy now " + links)
    info = h.svc.reports.get(r.report_id, "default")
    assert "spam:many_links" in info.flags
    case = h.svc.cases.get(r.case_id).case
    assert case.queue == "reports-spam" and case.priority == 0
    text = "the very same complaint text sent again and again"
    receipts_ = [h.report(category="other", urls="", description=text) for _ in range(3)]
    flags = [h.svc.reports.get(x.report_id, "default").flags for x in receipts_]
    assert flags[0] == [] and flags[1] == [] and "spam:repeated_text" in flags[2]
    tiny = h.report(category="other", urls="", platform="x")
    assert "spam:empty" in h.svc.reports.get(tiny.report_id, "default").flags


def test_add_info_adds_urls_files_and_a_message(h: Hotline, tmp_path: Path) -> None:
    r = h.report()
    picture = write_image(tmp_path / "p.jpg", photo_like(200, 160, seed=2), "jpeg")
    status = h.svc.reports.add_info(
        r.display_number,
        r.secret,
        text="It was also posted here.",
        urls="https://example.com/a\nhttps://mirror.example.net/x",
        files=[ReportFile(picture)],
    )
    assert status.urls == 2 and status.files == 1
    assert [m.direction for m in status.messages] == ["from_reporter"]
    with h.db.session() as s:
        assert set(s.scalars(select(ReportUrl.case_id))) == {r.case_id}
    with pytest.raises(InvalidValue, match="nothing to add"):
        h.svc.reports.add_info(r.display_number, r.secret)


def test_withdraw_erases_contact_and_resolves_an_unworked_complaint(h: Hotline) -> None:
    r = h.report(contact={"name": "Sam", "email": "sam@example.org"})
    status = h.svc.reports.withdraw(r.display_number, r.secret)
    assert status.state == "withdrawn" and not status.can_withdraw and not status.can_add
    info = h.svc.reports.get(r.report_id, "default")
    assert info.contact is None and info.withdrawn_at is not None
    case = h.svc.cases.get(r.case_id).case
    assert case.stage == "resolved" and case.outcome == "no_action" and case.state == "closed"
    with pytest.raises(Conflict, match="withdrawn"):
        h.svc.reports.add_info(r.display_number, r.secret, text="more")
    assert h.svc.reports.withdraw(r.display_number, r.secret).state == "withdrawn"  # idempotent


def test_withdraw_leaves_a_complaint_others_reported(h: Hotline) -> None:
    a = h.report()
    h.report()
    h.svc.reports.withdraw(a.display_number, a.secret)
    assert h.svc.cases.get(a.case_id).case.stage == "assess"


def test_messages_to_the_reporter_are_read_with_the_receipt(h: Hotline) -> None:
    r = h.report()
    h.svc.reports.message(r.report_id, h.people["rita"], "Thank you, we are looking into it.")
    status = h.svc.reports.status(r.display_number, r.secret)
    assert [m.public()["body"] for m in status.messages] == ["Thank you, we are looking into it."]
    assert "user" not in status.to_dict()["messages"][0]  # no staff names for the reporter
    with pytest.raises(Exception, match="may not"):
        h.svc.reports.message(r.report_id, h.people["aud"], "auditors only read")


def test_audit_records_reports_without_identifying_anyone(h: Hotline) -> None:
    r = h.report(contact={"email": "private@example.org"}, description="secret words")
    h.svc.reports.withdraw(r.display_number, r.secret)
    entries = [e for e in h.svc.audit.list() if e.object_type == "report"]
    assert sorted(e.action for e in entries) == ["report_received", "report_withdrawn"]
    text = repr([e.to_dict() for e in entries])
    assert "private@example.org" not in text and "secret words" not in text
    assert all(e.actor == "public" for e in entries)
    assert h.svc.audit.verify().ok


def test_partner_source_and_listing(h: Hotline) -> None:
    for i in range(5):
        h.svc.reports.submit(
            NewReport(category="other", urls=f"https://p.example/{i}", source="partner:acme")
        )
    page, cursor = h.svc.reports.list("default", limit=2)
    assert len(page) == 2 and cursor is not None and page[0].id > page[1].id
    rest, end = h.svc.reports.list("default", limit=10, before=cursor)
    assert len(rest) == 3 and end is None
    assert {p.source for p in page + rest} == {"partner:acme"}

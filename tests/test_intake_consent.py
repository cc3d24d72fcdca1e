"""On-device hashes in the consent bank: submit, match on every replica, withdraw."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.intake_helpers import Hotline, cheap_hashing, hotline
from tests.media_factory import photo_like, write_image

from safehold.banks.replica import IndexReplica
from safehold.errors import Conflict, InvalidValue
from safehold.hashing import hash_file
from safehold.intake.consent import ConsentHashes, check_items
from safehold.store import Database
from safehold.store.models import ReportHash

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_hashing(monkeypatch)


@pytest.fixture()
def h(db: Database) -> Hotline:
    return hotline(db)


def test_hashes_of_a_picture_match_a_scan_and_withdrawal_removes_them(
    h: Hotline, tmp_path: Path
) -> None:
    picture = write_image(tmp_path / "mine.png", photo_like(320, 240, seed=9), "png")
    hashes = hash_file(picture)
    replica = IndexReplica(h.db, poll_seconds=0.05)
    replica.start()
    try:
        receipt = h.svc.consent.submit(
            [{"md5": hashes.md5, "pdq": hashes.pdq, "quality": hashes.pdq_quality}], kind="adult"
        )
        assert receipt.added == 2 and receipt.receipt.display_number.startswith("H-")
        bank = h.svc.banks.get("consent")
        assert bank.counts == {"md5": 1, "pdq": 1} and bank.kind == "block"

        def matched() -> list[str]:
            return [m.bank for m in replica.matcher.match_content(hashes, tenant="default").matches]

        deadline = time.monotonic() + 10
        while not matched() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(matched()) == {"consent"}
        match = replica.matcher.match_content(hashes, tenant="default").matches[0]
        assert match.labels == ["ncii"] and match.source == "public_report"

        status = h.svc.reports.status(receipt.receipt.display_number, receipt.receipt.secret)
        assert status.state == "active" and status.hashes == 2
        status = h.svc.reports.withdraw(receipt.receipt.display_number, receipt.receipt.secret)
        assert status.state == "withdrawn" and status.hashes == 0
        deadline = time.monotonic() + 10
        while matched() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert matched() == []
        assert sum(h.svc.banks.get("consent").counts.values()) == 0
    finally:
        replica.stop()


def test_a_hash_two_people_submitted_stays_until_both_withdraw(h: Hotline) -> None:
    items = [{"md5": MD5, "pdq": PDQ, "quality": 100}]
    a = h.svc.consent.submit(items, kind="adult")
    b = h.svc.consent.submit(items, kind="adult")
    assert sum(h.svc.banks.get("consent").counts.values()) == 2
    h.svc.reports.withdraw(a.receipt.display_number, a.receipt.secret)
    assert sum(h.svc.banks.get("consent").counts.values()) == 2
    h.svc.reports.withdraw(b.receipt.display_number, b.receipt.secret)
    assert sum(h.svc.banks.get("consent").counts.values()) == 0
    with h.db.session() as s:  # withdrawn rows are forgotten once handled
        assert s.scalar(select(func.count()).select_from(ReportHash)) == 0


def test_minors_hashes_are_labelled_csam_and_video_hashes_are_kept(h: Hotline) -> None:
    frames = [{"frame": i, "timestamp": float(i), "pdq": PDQ, "quality": 90} for i in range(3)]
    r = h.svc.consent.submit([{"md5": MD5, "vpdq": frames}], kind="minor")
    entries = h.svc.banks.entries("consent")
    assert {e.signal_type for e in entries} == {"md5", "vpdq"}
    assert all(e.labels == ["csam"] for e in entries)
    assert (
        h.svc.reports.verify(r.receipt.display_number, r.receipt.secret).category
        == "own_images_minor"
    )


def test_plain_pictures_add_only_their_md5(h: Hotline) -> None:
    r = h.svc.consent.submit([{"md5": MD5, "pdq": PDQ, "quality": 12}], kind="adult")
    assert r.added == 1 and "too plain" in r.notes[0]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one file"),
        ("not a list", "at least one file"),
        ([{"md5": "zz"}], "32 hexadecimal"),
        ([{"md5": MD5}], "send pdq"),
        ([{"md5": MD5, "pdq": PDQ}], "quality must be"),
        ([{"md5": MD5, "pdq": PDQ[:-1], "quality": 100}], "64 hexadecimal"),
        ([{"md5": MD5, "pdq": PDQ, "quality": 100, "vpdq": []}], "not both"),
        ([{"md5": MD5, "vpdq": [{"timestamp": -1, "pdq": PDQ, "quality": 90}]}], "timestamp"),
        ([{"md5": MD5, "pdq": PDQ, "quality": 100, "name": "me.jpg"}], "unknown fields"),
        ([{"md5": MD5, "pdq": PDQ, "quality": 100}] * 21, "at most 20"),
        ([{"md5": "<script>" * 4, "pdq": PDQ, "quality": 100}], "hexadecimal"),
    ],
)
def test_bad_submissions_are_refused(items: object, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        check_items(items)


def test_bad_kind_and_report_receipts(h: Hotline) -> None:
    with pytest.raises(InvalidValue, match="kind must be"):
        h.svc.consent.submit([{"md5": MD5, "pdq": PDQ, "quality": 100}], kind="someone-else")
    report = h.report()
    with pytest.raises(Conflict, match="not for hashes"):
        ConsentHashes(h.db, h.svc.audit).withdraw(report.display_number, report.secret)


def test_consent_bank_shared_on_creation(h: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHOLD_CONSENT_BANK", "stop-ncii-local")
    monkeypatch.setenv("SAFEHOLD_CONSENT_SHARE", "acme, beta")
    h.svc.consent.submit([{"md5": MD5, "pdq": PDQ, "quality": 100}], kind="adult")
    assert list(h.svc.banks.get("stop-ncii-local").shared_with) == ["acme", "beta"]

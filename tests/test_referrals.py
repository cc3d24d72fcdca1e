"""Referral round trip: a scanned picture matches a bank, the case's file is preserved in
the vault, two reviewers approve, the CyberTipline submission goes to the local fake
NCMEC server (which validates the XML against the schema and enforces the flow), and
NCMEC's report id lands on the case. Failures mid-flow, lost answers and tampering too."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import update
from tests.api_helpers import bearer, cheap_argon2, new_key, serve
from tests.fake_cybertipline import FakeCyberTipline
from tests.intake_helpers import PASSWORD, cheap_hashing
from tests.media_factory import photo_like, write_image

from safehold.access.users import UserInfo, Users
from safehold.banks.entries import make_entry
from safehold.errors import Conflict, InvalidValue
from safehold.hashing import hash_file
from safehold.refer.ncmec import CyberTiplineClient, RetryPolicy, validate
from safehold.refer.ncmec.client import Credentials
from safehold.refer.vault import EvidenceDamaged, MasterKey
from safehold.store import Database
from safehold.store.models import Case, VaultBlob
from safehold.web.service import Service


@pytest.fixture(autouse=True)
def _cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
    cheap_hashing(monkeypatch)


@pytest.fixture()
def ncmec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeCyberTipline]:
    with FakeCyberTipline() as server:
        monkeypatch.setenv("SAFEHOLD_NCMEC_BASE_URL", server.url)
        monkeypatch.setenv("SAFEHOLD_NCMEC_USERNAME", server.username)
        monkeypatch.setenv("SAFEHOLD_NCMEC_PASSWORD", server.password)
        monkeypatch.setenv("SAFEHOLD_NCMEC_COMPANY", "Example Platform Inc.")
        monkeypatch.setenv("SAFEHOLD_NCMEC_EMAIL", "trust-safety@platform.example")
        monkeypatch.setenv("SAFEHOLD_NCMEC_CONTACT_NAME", "Casey Reviewer")
        monkeypatch.setenv("SAFEHOLD_VAULT_KEY", MasterKey.generate().encode())
        monkeypatch.setenv("SAFEHOLD_VAULT_DIR", str(tmp_path / "vault"))
        yield server


@dataclass
class Platform:
    svc: Service
    client: Any
    people: dict[str, UserInfo]
    picture: Path
    original: bytes

    def scan(self, key: str, account: str, content_id: str) -> dict[str, Any]:
        r = self.client.post(
            "/v1/scan",
            files={"file": ("upload.png", self.original, "image/png")},
            data={
                "content_id": content_id,
                "account_id": account,
                "account": json.dumps(
                    {"ip": "192.0.2.44", "screen_name": "uploader_9", "email": "u9@mail.example"}
                ),
            },
            headers=bearer(key),
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def case_of(self, account: str) -> int:
        found = [c for c in self.svc.cases.list_cases("default").cases if c.account_id == account]
        assert found, "no case opened"
        return int(found[0].id)


@pytest.fixture()
def platform(
    db: Database, ncmec: FakeCyberTipline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Platform]:
    monkeypatch.setenv("SAFEHOLD_QUEUE_URL", "memory://?immediate=1")
    picture = write_image(tmp_path / "known.png", photo_like(320, 240, seed=21), "png")
    hashes = hash_file(picture)
    with serve(db) as client:
        svc: Service = client.app.state.service  # type: ignore[attr-defined]
        svc.banks.create("known")
        svc.banks.add("known", [make_entry("pdq", hashes.pdq or "", ["A1"], source="ncmec")])
        svc.replica.sync()
        users = Users(db, svc.audit)
        people = {
            n: users.create(n, PASSWORD, r)
            for n, r in [("rita", "reviewer"), ("rob", "reviewer"), ("lee", "lead")]
        }
        yield Platform(svc, client, people, picture, picture.read_bytes())


def fast_client(server: FakeCyberTipline) -> CyberTiplineClient:
    return CyberTiplineClient(
        Credentials(server.username, server.password),
        base_url=server.url,
        timeout=5.0,
        retry=RetryPolicy(attempts=2, first_delay=0.0, max_delay=0.0),
        sleep=lambda seconds: None,
    )


def test_round_trip_preserve_two_reviewers_submit_report_id_on_case(
    platform: Platform, ncmec: FakeCyberTipline, db: Database
) -> None:
    key = new_key(db, "scan", tenant="default")
    scanned = platform.scan(key, "acct-42", "upload-1")
    assert scanned["decision"] == "block" and scanned["matches"][0]["labels"] == ["A1"]
    case_id = platform.case_of("acct-42")
    view = platform.svc.cases.get(case_id)
    item = view.items[0]
    platform.svc.cases.reveal(case_id, item.id, platform.people["rita"], seconds=2.0)

    rita, rob = platform.people["rita"], platform.people["rob"]
    proposed = platform.svc.referrals.propose(
        case_id,
        rita,
        annotations=["sextortion"],
        file_annotations=["possibleSelfProduction"],
        notes="Known A1 picture re-uploaded.",
    )
    assert proposed.status == "proposed"
    with pytest.raises(Conflict, match="second person"):
        platform.svc.referrals.approve(proposed.id, rita)
    with pytest.raises(Conflict, match="already has referral"):
        platform.svc.referrals.propose(case_id, rob)
    assert ncmec.count("submit") == 0  # nothing leaves before the second approval

    sent = platform.svc.referrals.approve(proposed.id, rob)  # the job runs at once here
    final = platform.svc.referrals.get(sent.id)
    assert final.status == "sent", final.error
    assert final.external_id is not None and final.phase == "finished"
    with db.session() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.ncmec_report_id == final.external_id

    # what NCMEC received: one report, schema-valid, the file byte for byte
    assert ncmec.count("submit") == 1
    report = ncmec.reports[int(final.external_id)]
    assert report.state == "finished"
    validate(report.xml)
    doc = etree.fromstring(report.xml)
    assert doc.findtext(".//reporter/reportingPerson/email") == "trust-safety@platform.example"
    assert doc.findtext(".//personOrUserReported/espIdentifier") == "acct-42"
    assert doc.findtext(".//personOrUserReported/screenName") == "uploader_9"
    assert doc.findtext(".//personOrUserReported/ipCaptureEvent/ipAddress") == "192.0.2.44"
    assert doc.find(".//incidentSummary/reportAnnotations/sextortion") is not None
    [uploaded] = report.files.values()
    assert uploaded.data == platform.original
    details = etree.fromstring(uploaded.details or b"")
    assert details.findtext(".//industryClassification") == "A1"
    assert details.findtext(".//fileViewedByEsp") == "true"
    assert details.findtext(".//originalFileName") == "upload-1"
    assert details.find(".//fileAnnotations/possibleSelfProduction") is not None
    assert hashlib.md5(uploaded.data).hexdigest() in (uploaded.details or b"").decode()

    # preserved in the vault, every access audited; the audit chain holds
    items = platform.svc.vault.list_items(case_id=case_id)  # type: ignore[union-attr]
    assert any(i.origin == f"referral:{final.id}:item:{item.id}" for i in items)
    actions = [
        e.action for e in platform.svc.audit.list(object_type="case", object_id=str(case_id))
    ]
    assert {"referral_proposed", "referral_approved", "referral_sent"} <= set(actions)
    assert platform.svc.audit.verify().ok


def test_a_rejected_referral_is_never_sent(
    platform: Platform, ncmec: FakeCyberTipline, db: Database
) -> None:
    platform.scan(new_key(db, "scan", tenant="default"), "acct-7", "upload-7")
    case_id = platform.case_of("acct-7")
    r = platform.svc.referrals.propose(case_id, platform.people["rita"])
    with pytest.raises(InvalidValue, match="say why"):
        platform.svc.referrals.reject(r.id, platform.people["rob"], "")
    assert (
        platform.svc.referrals.reject(r.id, platform.people["rob"], "not CSAM").status == "rejected"
    )
    with pytest.raises(Conflict):
        platform.svc.referrals.approve(r.id, platform.people["rob"])
    assert ncmec.count("submit") == 0
    # a new proposal is possible after a rejection
    assert platform.svc.referrals.propose(case_id, platform.people["rob"]).status == "proposed"


def test_failure_mid_flow_is_retracted_and_a_retry_files_it(
    platform: Platform, ncmec: FakeCyberTipline, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.scan(new_key(db, "scan", tenant="default"), "acct-8", "upload-8")
    case_id = platform.case_of("acct-8")
    referrals = platform.svc.referrals
    referrals.jobs = None  # send by hand below, with a client that does not sleep
    r = referrals.propose(case_id, platform.people["rita"])
    referrals.approve(r.id, platform.people["rob"])
    ncmec.fail("upload", "error", times=2)  # both attempts of the first run
    with fast_client(ncmec) as client:
        failed = referrals.send(r.id, client=client)
    assert failed.status == "retracted" and failed.error
    assert [x.state for x in ncmec.reports.values()] == ["retracted"]
    again = referrals.retry(r.id, platform.people["rita"])
    assert again.status == "approved"
    with fast_client(ncmec) as client:
        sent = referrals.send(r.id, client=client)
    assert sent.status == "sent" and ncmec.count("submit") == 2
    assert ncmec.reports[int(sent.external_id or 0)].state == "finished"


def test_a_lost_submit_answer_is_never_resubmitted_blindly(
    platform: Platform, ncmec: FakeCyberTipline, db: Database
) -> None:
    platform.scan(new_key(db, "scan", tenant="default"), "acct-9", "upload-9")
    case_id = platform.case_of("acct-9")
    referrals = platform.svc.referrals
    referrals.jobs = None
    r = referrals.propose(case_id, platform.people["rita"])
    referrals.approve(r.id, platform.people["rob"])
    ncmec.fail("submit", "drop")
    with fast_client(ncmec) as client:
        unknown = referrals.send(r.id, client=client)
        assert unknown.status == "unknown" and unknown.phase == "submit_unknown"
        with pytest.raises(Conflict):
            referrals.send(r.id, client=client)
    assert ncmec.count("submit") == 1
    opened = next(iter(ncmec.reports))  # a person checked with NCMEC: this one was opened
    with pytest.raises(Exception, match="lead"):
        referrals.resolve_unknown(r.id, platform.people["rita"], opened)
    referrals.resolve_unknown(r.id, platform.people["lee"], opened)
    with fast_client(ncmec) as client:
        sent = referrals.send(r.id, client=client)
    assert sent.status == "sent" and sent.external_id == str(opened)
    assert ncmec.count("submit") == 1


def test_refused_without_vault_or_company(
    platform: Platform, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.scan(new_key(db, "scan", tenant="default"), "acct-3", "upload-3")
    case_id = platform.case_of("acct-3")
    monkeypatch.delenv("SAFEHOLD_NCMEC_COMPANY")
    with pytest.raises(InvalidValue, match="SAFEHOLD_NCMEC_COMPANY"):
        platform.svc.referrals.propose(case_id, platform.people["rita"])
    monkeypatch.setenv("SAFEHOLD_NCMEC_COMPANY", "Example")
    vault, platform.svc.vault = platform.svc.vault, None
    try:
        with pytest.raises(Conflict, match="evidence vault is not configured"):
            platform.svc.referrals.propose(case_id, platform.people["rita"])
    finally:
        platform.svc.vault = vault
    with pytest.raises(InvalidValue, match="unknown incident type"):
        platform.svc.referrals.propose(case_id, platform.people["rita"], incident_type="<script>")
    with pytest.raises(InvalidValue, match="unknown file annotation"):
        platform.svc.referrals.propose(case_id, platform.people["rita"], file_annotations=["x"])


def test_tampered_evidence_is_detected_before_sending(
    platform: Platform, ncmec: FakeCyberTipline, db: Database
) -> None:
    platform.scan(new_key(db, "scan", tenant="default"), "acct-5", "upload-5")
    case_id = platform.case_of("acct-5")
    referrals = platform.svc.referrals
    referrals.jobs = None
    r = referrals.propose(case_id, platform.people["rita"])
    referrals.approve(r.id, platform.people["rob"])
    vault = platform.svc.vault
    assert vault is not None
    with db.session() as s:
        blob = s.query(VaultBlob).first()
        assert blob is not None
        path = Path(vault.root) / blob.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(EvidenceDamaged), fast_client(ncmec) as client:
        referrals.send(r.id, client=client)
    assert ncmec.count("submit") == 0
    assert not vault.verify(by="cli:test").ok
    with db.session() as s:  # a changed audit row is caught by the chain
        from safehold.store.models import AuditEntry

        s.execute(update(AuditEntry).where(AuditEntry.id == 2).values(actor="someone-else"))
    assert not platform.svc.audit.verify().ok


def test_referrals_cli_lists_shows_and_sends(
    platform: Platform, ncmec: FakeCyberTipline, db: Database, db_url: str
) -> None:
    from typer.testing import CliRunner

    from safehold.cli import app

    platform.scan(new_key(db, "scan", tenant="default"), "acct-c", "upload-c")
    case_id = platform.case_of("acct-c")
    referrals = platform.svc.referrals
    referrals.jobs = None  # approved, not sent: the command sends it
    r = referrals.propose(case_id, platform.people["rita"])
    referrals.approve(r.id, platform.people["rob"])
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--db", db_url, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.stdout

    listed = json.loads(run("referrals", "list", "--json"))["referrals"]
    assert [(x["id"], x["status"]) for x in listed] == [(r.id, "approved")]
    assert "sent" in run("referrals", "send", str(r.id))
    shown = json.loads(run("referrals", "show", str(r.id), "--json"))
    assert shown["status"] == "sent" and shown["external_id"]
    assert "NCMEC report" in run("referrals", "send", str(r.id))  # already sent: no resubmit
    assert ncmec.count("submit") == 1
    run("referrals", "show", "999", code=2)


def test_synthetic_labels_annotate_files_as_generative_ai() -> None:
    from safehold.refer.ncmec import FileAnnotation
    from safehold.refer.referrals import _file_annotations

    synthetic = [{"labels": ["csam:ai-generated"]}]
    assert _file_annotations({}, None, synthetic) == {FileAnnotation.GENERATIVE_AI}
    assert _file_annotations({}, "ncii:synthetic", []) == {FileAnnotation.GENERATIVE_AI}
    chosen = {"file_annotations": ["infant"]}
    assert _file_annotations(chosen, "A1", [{"labels": ["A1"]}]) == {FileAnnotation.INFANT}

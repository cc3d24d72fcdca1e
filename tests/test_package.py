"""Law-enforcement packages (SQLite and PostgreSQL): a case made by scanning synthetic
pictures that match the demo bank through the service, with account signals (an IP
address, a device id, a profile image hash, linked ids); the rules preserve the uploads
into a vault with a test master key; the package is exported to a generated age
identity. Every evidence file decrypts to the original bytes, the manifest, SHA256SUMS
and the custody record check out, the summary PDF parses and names the case and the IP,
and a preservation request's scope (one account, a date range) leaves the rest out.
Every picture is drawn by code; the labels on them are illustrative only."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import update
from tests.console_seed import seed
from tests.intake_helpers import cheap_hashing

from safehold.errors import Conflict, InvalidValue
from safehold.refer.package import (
    AgeSealer,
    Packages,
    case_reference,
    parse_recipient,
    transliterate,
    verify_package,
)
from safehold.refer.preservation import Preservations
from safehold.refer.vault import EvidenceVault, MasterKey
from safehold.store import Database
from safehold.store.models import Event, utcnow

BASE = "http://127.0.0.1"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

RULES = """\
mode: first-match
default: allow
rules:
  - name: bank-match
    description: Bank matches are blocked, reviewed and preserved as evidence.
    when:
      match: {kind: block}
    actions:
      - block
      - review: {queue: default}
      - preserve: {days: 30}
"""

REVIEW_ONLY = """\
mode: first-match
default: allow
rules:
  - name: bank-match
    when:
      match: {kind: block}
    actions:
      - block
      - review: {queue: default}
"""

PROFILE = "ab" * 32
SUSPECT = {
    "ip": "203.0.113.7",
    "device_id": "dev-7F3A-suspect",
    "profile_image_sha256": PROFILE,
    "linked_accounts": ["alt-account-9"],
    "age_days": 3,
}
SUSPECT_LATER = {"ip": "198.51.100.23", "device_id": "dev-7F3A-suspect", "age_days": 40}
OTHER = {"ip": "192.0.2.55", "device_id": "dev-other-1", "profile_image_sha256": PROFILE}


@dataclass
class World:
    app: Any
    db: Database
    tmp: Path
    key: str
    queries: list[Path]

    @property
    def svc(self) -> Any:
        return self.app.state.service

    @property
    def vault(self) -> EvidenceVault:
        vault = self.svc.vault
        assert vault is not None
        return vault

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE)

    def scan(
        self, picture: int, account: str, signals: dict[str, Any], content_id: str
    ) -> dict[str, Any]:
        path = self.queries[picture]
        with self.client() as c:
            r = c.post(
                "/v1/scan",
                files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
                data={
                    "content_id": content_id,
                    "account_id": account,
                    "account": json.dumps(signals),
                },
                headers={"Authorization": f"Bearer {self.key}"},
            )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["decision"] == "block", body
        return body

    def case_of(self, account: str) -> int:
        found = [c for c in self.svc.cases.list_cases("default").cases if c.account_id == account]
        assert len(found) == 1, found
        return int(found[0].id)

    def packages(self) -> Packages:
        return Packages(self.db, self.svc.audit, vault=self.svc.vault, cases=self.svc.cases)

    def preservations(self) -> Preservations:
        return Preservations(self.db, self.svc.audit, vault=self.svc.vault, media=self.svc.media)


def make_world(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str = RULES
) -> Iterator[World]:
    from safehold.rules.store import RuleSets
    from safehold.web.app import create_app

    cheap_hashing(monkeypatch)
    import safehold.access.keys

    monkeypatch.setattr(safehold.access.keys, "_hasher", safehold.access.users._hasher)
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", MasterKey.generate().encode())
    monkeypatch.setenv("SAFEHOLD_VAULT_DIR", str(tmp_path / "vault"))
    monkeypatch.setenv("SAFEHOLD_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("SAFEHOLD_WEBHOOK_RETRIES", "0")
    db = Database(url)
    seeded = seed(db, tmp_path)
    RuleSets(db).save(rules, created_by="cli", note="package tests")
    app = create_app(db, queue_url="memory://?immediate=1", worker=False)
    with TestClient(app, base_url=BASE):  # runs the lifespan (index loaded)
        yield World(app, db, tmp_path, seeded.key, seeded.demo.queries)
    db.close()


@pytest.fixture()
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The service on SQLite and PostgreSQL, with a vault and rules that preserve."""
    yield from make_world(db_url, tmp_path, monkeypatch)


@pytest.fixture()
def world_sqlite(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    yield from make_world(sqlite_url, tmp_path, monkeypatch)


@pytest.fixture()
def identity() -> Any:
    return pyrage.x25519.Identity.generate()


def suspect_case(w: World) -> int:
    """Two uploads of account ``suspect-1`` and one of ``other-2`` (the same picture as
    the suspect's first: a related case by SHA-256)."""
    w.scan(1, "suspect-1", SUSPECT, "upload-1")
    w.scan(3, "suspect-1", SUSPECT_LATER, "upload-2")
    w.scan(1, "other-2", OTHER, "upload-3")
    return w.case_of("suspect-1")


def pdf_text(path: Path) -> str:
    reader = PdfReader(str(path))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def base_fonts(path: Path) -> set[str]:
    reader = PdfReader(str(path))
    return {
        str(font.get_object()["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
    }


def all_bytes(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- round trip


def test_package_round_trip(world: World, identity: Any, tmp_path: Path) -> None:
    case_id = suspect_case(world)
    items = world.vault.list_items(case_id=case_id)
    assert len(items) == 2  # the rules preserved both uploads of the suspect
    originals = {
        hashlib.sha256(world.queries[i].read_bytes()).hexdigest(): world.queries[i].read_bytes()
        for i in (1, 3)
    }
    recipient = str(identity.to_public())
    out = tmp_path / "pkg"
    result = world.packages().export(
        case_id, out, recipients=recipient, by="user:leo", reason="Police request LE-77"
    )
    assert sorted(result.items) == sorted(i.id for i in items)
    assert (out.stat().st_mode & 0o777) == 0o700
    for p in out.rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600), p

    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["format"] == "safehold-le-package"
    assert manifest["case"]["id"] == case_id and manifest["tenant"] == "default"
    assert manifest["case"]["reference"] == case_reference("default", case_id)
    assert manifest["created_by"] == "user:leo" and manifest["reason"] == "Police request LE-77"
    fp = parse_recipient(recipient).fingerprint
    assert manifest["recipient_fingerprint"] == fp
    assert manifest["recipients"][0]["public_key"] == recipient
    assert manifest["request"] is None
    assert manifest["data_minimisation"]["statement"]
    assert any("comments" in x["what"] for x in manifest["data_minimisation"]["left_out"])

    # every file: its SHA-256 and size in the manifest, and in SHA256SUMS
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "SHA256SUMS")
    }
    for rel, f in listed.items():
        data = (out / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"]
    sums = dict(
        reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {*listed, "manifest.json"}
    for rel, digest in sums.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest

    # the evidence: each decrypts with the identity to the uploaded bytes
    assert len(manifest["items"]) == 2
    for item in manifest["items"]:
        content = out / item["files"]["content"]
        assert content.name.endswith(".jpg.age")
        plain = pyrage.decrypt(content.read_bytes(), [identity])
        assert plain == originals[item["sha256"]]
        context = json.loads(
            pyrage.decrypt((out / item["files"]["context"]).read_bytes(), [identity])
        )
        assert context["context"]["input"]["account"]["ip"] in ("203.0.113.7", "198.51.100.23")
    # the plaintext never touched the disk: no file of the package holds it
    for data in all_bytes(out):
        for original in originals.values():
            assert original[100:164] not in data

    # custody and the whole package check out; with the identity, every file decrypts
    check = verify_package(out, str(identity))
    assert check.ok, check.problems
    assert check.decrypted == 4
    custody = json.loads((out / "custody.json").read_bytes())
    actions = [e["action"] for e in custody["entries"]]
    assert actions.count("vault_preserve") == 2 and actions.count("vault_export") == 2
    assert "export" in actions and custody["audit_verified"]["ok"]

    # the summary: the case reference on every page, the IP, the device, linked accounts
    reader = PdfReader(str(out / "summary.pdf"))
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=1)  # A4
    for n, page in enumerate(reader.pages, 1):
        text = page.extract_text()
        assert case_reference("default", case_id) in text
        assert f"page {n} of {len(reader.pages)}" in text
        assert not page.images  # never an image of the content
    text = pdf_text(out / "summary.pdf")
    for expected in (
        "203.0.113.7",
        "198.51.100.23",
        "dev-7F3A-suspect",
        "alt-account-9",
        "other-2",  # the linked account: the same picture in another account's case
        "192.0.2.55",
        PROFILE,
        "suspect-1",
        "Timeline",
        "Suspect profile",
        "Matches and labels",
    ):
        assert expected in text, expected

    # audited: the export on the case, each item's export and access with the reason
    [entry] = world.svc.audit.list(action="export", object_type="case", object_id=case_id)
    assert entry.actor == "user:leo"
    assert entry.details["reason"] == "Police request LE-77"
    assert entry.details["recipient_fingerprint"] == fp
    assert entry.details["files"] == len(listed) + 2  # + manifest.json and SHA256SUMS
    assert entry.details["request_reference"] is None
    accesses = world.svc.audit.list(action="vault_access")
    assert {a.object_id for a in accesses} == {str(i.id) for i in items}
    assert all("Police request LE-77" in a.details["reason"] for a in accesses)
    assert world.svc.audit.verify().ok
    assert world.vault.verify(record=False).ok


def test_a_preservation_request_scopes_the_package(
    world: World, identity: Any, tmp_path: Path
) -> None:
    case_id = suspect_case(world)
    with world.db.session() as s:  # the suspect's second upload was 60 days ago
        s.execute(
            update(Event)
            .where(Event.content_id == "upload-2")
            .values(at=utcnow() - timedelta(days=60))
        )
    pres = world.preservations()
    req = pres.record(
        "default",
        "LE-2026-0042",
        "Metropolitan Police, Online Child Exploitation Unit",
        "suspect-1",
        {
            "content": True,
            "account": True,
            "since": (utcnow() - timedelta(days=7)).date().isoformat(),
        },
        utcnow() + timedelta(days=90),
        "user:leo",
    )
    pres.preserve(req.id, "user:leo")
    out = tmp_path / "scoped"
    result = world.packages().export(
        case_id,
        out,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="answer LE-2026-0042",
        request_id=req.id,
    )
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["request"]["reference"] == "LE-2026-0042"
    assert manifest["request"]["id"] == req.id
    # only the recent upload (the old one is outside the date range); no events kind
    shas = {i["sha256"] for i in manifest["items"]}
    assert hashlib.sha256(world.queries[1].read_bytes()).hexdigest() in shas
    assert hashlib.sha256(world.queries[3].read_bytes()).hexdigest() not in shas
    # the upload (once, though the rules and the request both preserved it) and the
    # request's record of the account's events
    assert len(result.items) == 2
    origins = [i["origin"] for i in manifest["items"]]
    assert origins[0] == f"event:{world.svc.cases.get(case_id).items[0].event_id}"
    assert origins[1].startswith(f"preservation:{req.id}:events:")
    record = json.loads(
        pyrage.decrypt((out / manifest["items"][1]["files"]["content"]).read_bytes(), [identity])
    )
    assert [e["content_id"] for e in record["events"]] == ["upload-1"]
    assert record["events"][0]["account"]["ip"] == "203.0.113.7"
    sel = manifest["data_minimisation"]["selection"]
    assert sel["accounts"] == ["suspect-1"] and sel["since"] is not None
    left = " ".join(x["what"] + " " + x["why"] for x in manifest["data_minimisation"]["left_out"])
    assert "LE-2026-0042" in left and "related" in left and "decisions" in left
    text = pdf_text(out / "summary.pdf")
    assert "203.0.113.7" in text and "LE-2026-0042" in text
    for outside in ("198.51.100.23", "other-2", "192.0.2.55", "upload-2"):
        assert outside not in text, outside
    for data in all_bytes(out):
        assert b"other-2" not in data and b"192.0.2.55" not in data
    assert verify_package(out, str(identity)).ok
    [entry] = world.svc.audit.list(action="export", object_type="case", object_id=case_id)
    assert entry.details["request_reference"] == "LE-2026-0042"
    assert entry.details["request_id"] == req.id
    # the custody record holds the request's own entries
    custody = json.loads((out / "custody.json").read_bytes())
    assert {"preservation_record", "preservation_preserve"} <= {
        e["action"] for e in custody["entries"]
    }
    # fulfilled with the package
    done = pres.fulfil(req.id, "user:leo", out)
    assert done.status == "fulfilled" and done.case_id == case_id
    package = pres.package(req.id)
    assert package is not None and package["export_id"] == result.export_id
    assert package["manifest_sha256"] == result.manifest_sha256


def test_leaving_out_account_data_and_items(
    world_sqlite: World, identity: Any, tmp_path: Path
) -> None:
    w = world_sqlite
    case_id = suspect_case(w)
    first, second = sorted(i.id for i in w.vault.list_items(case_id=case_id))
    out = tmp_path / "min"
    result = w.packages().export(
        case_id,
        out,
        recipients=[str(identity.to_public())],
        by="user:leo",
        reason="minimal",
        exclude=["account", "related"],
        exclude_items=[second],
    )
    assert result.items == [first]
    text = pdf_text(out / "summary.pdf")
    assert "203.0.113.7" not in text and "other-2" not in text and "dev-7F3A" not in text
    manifest = json.loads((out / "manifest.json").read_bytes())
    [item] = manifest["items"]
    record = json.loads(pyrage.decrypt((out / item["files"]["context"]).read_bytes(), [identity]))
    assert "account" not in json.dumps(record).replace("account_id", "")
    for data in all_bytes(out):
        assert b"203.0.113.7" not in data
    # no content at all: no evidence directory, a package still
    bare = tmp_path / "bare"
    w.packages().export(
        case_id,
        bare,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="facts only",
        exclude=["content", "context"],
    )
    assert not (bare / "evidence").exists()
    assert verify_package(bare).ok


def test_sealed_archives(world_sqlite: World, identity: Any, tmp_path: Path) -> None:
    w = world_sqlite
    case_id = suspect_case(w)
    out = tmp_path / "exports" / "case-pkg"
    result = w.packages().export(
        case_id,
        out,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="sealed",
        seal_archive=True,
    )
    assert result.archive is not None and result.archive.name == "case-pkg.tar.age"
    assert (result.archive.stat().st_mode & 0o777) == 0o600
    assert not list(result.archive.parent.glob(".*.tmp"))
    plain = pyrage.decrypt(result.archive.read_bytes(), [identity])
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        names = tar.getnames()
        assert "case-pkg/manifest.json" in names and "case-pkg/summary.pdf" in names
        assert all(m.uid == 0 and m.uname == "" for m in tar.getmembers())
        manifest = tar.extractfile("case-pkg/manifest.json")
        assert manifest is not None
        assert hashlib.sha256(manifest.read()).hexdigest() == result.manifest_sha256
    zipped = tmp_path / "zipped"
    z = w.packages().export(
        case_id,
        zipped,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="zip",
        archive="zip",
    )
    assert z.archive is not None
    with zipfile.ZipFile(z.archive) as zf:
        assert "zipped/SHA256SUMS" in zf.namelist()


def test_tampering_is_detected(world_sqlite: World, identity: Any, tmp_path: Path) -> None:
    w = world_sqlite
    case_id = suspect_case(w)
    out = tmp_path / "t"
    w.packages().export(
        case_id, out, recipients=str(identity.to_public()), by="user:leo", reason="x"
    )
    assert verify_package(out, str(identity)).ok
    other = pyrage.x25519.Identity.generate()
    wrong = verify_package(out, str(other))
    assert not wrong.ok and any("does not decrypt" in p for p in wrong.problems)
    custody = json.loads((out / "custody.json").read_bytes())
    custody["entries"][0]["details"]["reason"] = "edited"
    (out / "custody.json").write_bytes(json.dumps(custody).encode())
    (out / "extra.txt").write_bytes(b"added")
    problems = verify_package(out).problems
    assert any("custody.json" in p and "changed" in p for p in problems)
    assert any("hash does not match" in p for p in problems)
    assert any("extra.txt" in p for p in problems)


# --------------------------------------------------------------------------- fonts, hostile input


def _hostile_case(w: World) -> int:
    hostile = {
        "ip": "203.0.113.9",
        "device_id": "устройство-\u202e<script>alert(1)</script>\x07",
        "nickname": "Łukasz — “quoted” 中文 \u200b",
    }
    w.scan(1, "suspect-\u202eevil", hostile, "upload-<b>1</b>")
    return w.case_of("suspect-\u202eevil")


def test_summary_with_core_fonts_transliterates(
    world_sqlite: World, identity: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world_sqlite
    case_id = _hostile_case(w)
    monkeypatch.setenv("SAFEHOLD_PDF_FONT", "core")
    out = tmp_path / "core"
    w.packages().export(
        case_id,
        out,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="core fonts \u202eéèñ",
    )
    assert base_fonts(out / "summary.pdf") <= {"/Helvetica", "/Helvetica-Bold"}
    text = pdf_text(out / "summary.pdf")
    assert "203.0.113.9" in text and case_reference("default", case_id) in text
    assert 'Lukasz - "quoted" ??' in text  # transliterated; no glyph: "?"
    assert "\u202e" not in text and "éèñ" in text
    # a configured font that does not exist falls back to the core fonts
    monkeypatch.setenv("SAFEHOLD_PDF_FONT", str(tmp_path / "missing.ttf"))
    out2 = tmp_path / "fallback"
    w.packages().export(
        case_id, out2, recipients=str(identity.to_public()), by="user:leo", reason="fallback"
    )
    assert "203.0.113.9" in pdf_text(out2 / "summary.pdf")
    assert base_fonts(out2 / "summary.pdf") <= {"/Helvetica", "/Helvetica-Bold"}


@pytest.mark.skipif(not DEJAVU.is_file(), reason="fonts-dejavu-core is not installed")
def test_summary_with_the_unicode_font(
    world_sqlite: World, identity: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world_sqlite
    case_id = _hostile_case(w)
    monkeypatch.setenv("SAFEHOLD_PDF_FONT", str(DEJAVU))
    out = tmp_path / "dejavu"
    w.packages().export(
        case_id, out, recipients=str(identity.to_public()), by="user:leo", reason="unicode"
    )
    assert all("DejaVu" in f for f in base_fonts(out / "summary.pdf"))
    text = pdf_text(out / "summary.pdf")
    assert "устройство-" in text and "Łukasz" in text and "203.0.113.9" in text
    assert "\u202e" not in text and "\x07" not in text
    assert "<script>alert(1)</script>" in text  # text in a PDF, never markup


def test_transliterate() -> None:
    assert transliterate("Łódź — “x” …") == 'Lódz - "x" ...'
    assert transliterate("café ñ ü") == "café ñ ü"
    assert transliterate("中文") == "??"


def test_refusals(world_sqlite: World, identity: Any, tmp_path: Path) -> None:
    w = world_sqlite
    case_id = suspect_case(w)
    packages = w.packages()
    good = str(identity.to_public())
    for bad in ("", "age1notakey", "-----BEGIN PGP PUBLIC KEY BLOCK-----", "age1" + "q" * 58):
        with pytest.raises(InvalidValue):
            packages.export(case_id, tmp_path / "r", recipients=bad, by="user:leo", reason="x")
    with pytest.raises(InvalidValue, match="reason"):
        packages.export(case_id, tmp_path / "r", recipients=good, by="user:leo", reason=" ")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(InvalidValue, match="not an empty directory"):
        packages.export(case_id, busy, recipients=good, by="user:leo", reason="x")
    with pytest.raises(InvalidValue, match="unknown kind"):
        packages.export(
            case_id,
            tmp_path / "r",
            recipients=good,
            by="user:leo",
            reason="x",
            exclude=["passwords"],
        )
    assert not w.svc.audit.list(action="export", object_type="case")
    assert not (tmp_path / "r").exists()
    # a request for an account the case does not hold
    pres = w.preservations()
    req = pres.record("default", "LE-9", "Police", "nobody", None, None, "user:leo")
    with pytest.raises(Conflict, match="holds nothing of account"):
        packages.export(
            case_id, tmp_path / "r", recipients=good, by="user:leo", reason="x", request_id=req.id
        )


def test_age_sealer_for_vault_bundles(world_sqlite: World, identity: Any, tmp_path: Path) -> None:
    w = world_sqlite
    case_id = suspect_case(w)
    [first, *_] = w.vault.list_items(case_id=case_id)
    sealer = AgeSealer(str(identity.to_public()))
    result = w.vault.export(
        [first.id], tmp_path / "bundle", by="user:leo", reason="x", sealer=sealer
    )
    manifest = json.loads((result.path / "manifest.json").read_bytes())
    assert manifest["sealed_with"] == "age"
    content = result.path / manifest["items"][0]["files"]["content"]
    assert content.suffix == ".age"
    assert (
        hashlib.sha256(pyrage.decrypt(content.read_bytes(), [identity])).hexdigest() == first.sha256
    )
    assert not [
        p
        for p in result.path.rglob("*")
        if p.is_file() and p.suffix != ".age" and p.name not in ("manifest.json", "custody.json")
    ]

"""The evidence vault: encrypted preservation with context, audited access, export bundles
with custody records, key rotation, retention with legal holds and tombstones, tamper
detection, master-key configuration, and the ``preserve`` action through the job queue.
Every database test runs on SQLite and PostgreSQL. The content is drawn by code."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from api_helpers import picture_bytes
from job_helpers import wait_for
from safehold.actions.dispatch import Policy
from safehold.actions.worker import worker_context
from safehold.audit import AuditLog, entry_hash
from safehold.errors import InvalidValue, NotFound
from safehold.hashing import hash_file
from safehold.jobs import HANDLERS, Jobs
from safehold.refer.vault import (
    EvidenceDamaged,
    EvidenceVault,
    MasterKey,
    Retention,
    VaultKeyError,
    VaultNotConfigured,
    category_of,
    load_master_key,
    vault_from_env,
    verify_bundle,
)
from safehold.rules import Context
from safehold.store import Database
from safehold.store.models import (
    AuditEntry,
    Event,
    VaultBlob,
    VaultHold,
    VaultItem,
    VaultKey,
    VaultMasterKey,
    utcnow,
)

MATCH = {
    "bank": "known",
    "entry_id": 1,
    "external_id": "x-1",
    "labels": ["A1"],
    "source": "ncmec",
    "distance": 0,
    "signal_type": "pdq",
}


@pytest.fixture()
def key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture()
def vault(db: Database, tmp_path: Path, key: MasterKey) -> EvidenceVault:
    return EvidenceVault(db, tmp_path / "vault", key)


def context(n: int = 1) -> dict[str, Any]:
    return {
        "signals": {"sha256": "…", "pdq": "f" * 64},
        "matches": [MATCH],
        "account": {"age_days": 2, "verified": False, "marker": f"account-marker-{n}"},
        "upload": {"format": "png", "kind": "image", "width": 320, "height": 240},
    }


def preserve(vault: EvidenceVault, seed: int = 1, **kw: Any) -> Any:
    kw.setdefault("labels", ["A1"])
    kw.setdefault("context", context(seed))
    kw.setdefault("by", "system:test")
    return vault.preserve(picture_bytes(seed), **kw)


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def blob_file(vault: EvidenceVault, blob_id: int) -> Path:
    with vault.db.session() as s:
        return vault.root / s.get_one(VaultBlob, blob_id).path


def kinds(vault: EvidenceVault) -> list[tuple[str, str]]:
    return [(p.kind, p.object) for p in vault.verify(record=False).problems]


# --------------------------------------------------------------------------- preserve, read


def test_preserve_encrypts_at_rest_and_reads_back_with_an_audited_reason(
    db: Database, vault: EvidenceVault, key: MasterKey
) -> None:
    content = picture_bytes(3)
    item = vault.preserve(
        content,
        by="system:test",
        context=context(3),
        labels=["A1"],
        event_id=41,
        case_id=7,
        content_id="post-1",
        sha256=hashlib.sha256(content).hexdigest(),
        origin="event:41",
    )
    assert item.created and item.category == "csam" and item.size == len(content)
    assert item.sha256 == hashlib.sha256(content).hexdigest()
    assert (item.retain_until - item.preserved_at) == timedelta(days=365)

    # at rest: nothing readable, private modes, no plaintext digest in file names
    path = blob_file(vault, item.blob_id)
    raw = path.read_bytes()
    assert content[:64] not in raw and b"\x89PNG" not in raw and raw.startswith(b"SHVAULT1")
    assert item.sha256 not in str(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (vault.root.stat().st_mode & 0o777) == 0o700
    with db.session() as s:
        row = s.get_one(VaultItem, item.id)
        assert "account-marker-3" not in row.context
        wrapped = [k.wrapped for k in s.scalars(select(VaultKey))]
        assert key.encode() not in json.dumps(wrapped)
        masters = [m.id for m in s.scalars(select(VaultMasterKey))]
    assert masters == [key.id]  # the key's id only, never the key

    with pytest.raises(InvalidValue, match="reason"):
        vault.read(item.id, by="user:alice", reason=" ")
    evidence = vault.read(item.id, by="user:alice", reason="NCMEC referral 1234")
    assert evidence.content == content
    assert evidence.context["account"]["marker"] == "account-marker-3"
    assert evidence.record["event_id"] == 41 and evidence.record["case_id"] == 7
    [access] = vault.audit.list(action="vault_access")
    assert access.actor == "user:alice" and access.object == f"vault_item:{item.id}"
    assert access.details["reason"] == "NCMEC referral 1234"
    assert access.details["sha256"] == item.sha256

    # idempotent by origin; the same content again is one blob with a second item
    again = vault.preserve(content, by="system:test", origin="event:41")
    assert again.id == item.id and not again.created
    second = vault.preserve(content, by="system:test", context={"n": 2}, origin="event:42")
    assert second.id != item.id and second.blob_id == item.blob_id
    assert count(db, VaultBlob) == 1 and count(db, VaultItem) == 2
    assert vault.read_context(second.id, by="user:alice", reason="check")["context"] == {"n": 2}
    assert [e.action for e in vault.custody(item.id)] == ["vault_preserve", "vault_access"]
    assert vault.verify().ok

    with pytest.raises(InvalidValue, match="SHA-256"):
        vault.preserve(content, by="system:test", sha256="0" * 64)
    with pytest.raises(NotFound):
        vault.read(999, by="user:alice", reason="x")


def test_large_content_is_streamed_in_chunks(vault: EvidenceVault, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = os.urandom((1 << 20) * 2 + 123)  # not a picture: three chunks
    big.write_bytes(data)
    item = vault.preserve(big, by="system:test", labels=["ncii"])
    assert vault.read(item.id, by="user:a", reason="r").content == data
    exact = vault.preserve(data[: 1 << 20], by="system:test")  # exactly one full chunk
    assert vault.read(exact.id, by="user:a", reason="r").content == data[: 1 << 20]
    empty = vault.preserve(b"", by="system:test")
    assert vault.read(empty.id, by="user:a", reason="r").content == b""
    assert vault.verify().ok


def test_retention_settings() -> None:
    r = Retention.parse("csam=365,ncii=90,A1=730", "400")
    assert r.default_days == 400
    assert r.days_for(["A1"]) == 730  # the label's period beats its category's
    assert r.days_for(["B2"]) == 365
    assert r.days_for(["ncii"]) == 90
    assert r.days_for(["ncii"], requested=120) == 120  # a rule's days only lengthen
    assert r.days_for(["ncii"], requested=30) == 90
    assert r.days_for([]) == 400  # other: the default
    assert category_of(["iwf:B"]) == "csam" and category_of(["ncii:synthetic"]) == "ncii"
    assert Retention.parse("").days_for(["A1"]) == 365
    for bad, message in [
        ("csam", "NAME=DAYS"),
        ("csam=0", "between"),
        ("csam=ten", "whole number"),
        ("bogus=3", "neither a category"),
    ]:
        with pytest.raises(InvalidValue, match=message):
            Retention.parse(bad)
    with pytest.raises(InvalidValue, match="SAFEHOLD_VAULT_RETENTION_DAYS"):
        Retention.parse("", "-1")


# --------------------------------------------------------------------------- export


class RecipientSealer:
    """A stand-in for a recipient's key (the hook for encrypted bundles)."""

    name = "test-recipient"

    def __init__(self) -> None:
        self.key = os.urandom(32)
        self.sealed: list[str] = []

    def seal(self, path: Path) -> Path:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        out = path.with_name(path.name + ".sealed")
        out.write_bytes(nonce + AESGCM(self.key).encrypt(nonce, path.read_bytes(), None))
        path.unlink()
        self.sealed.append(path.name)
        return out


def test_export_bundle_has_matching_hashes_and_a_verifiable_custody_record(
    db: Database, vault: EvidenceVault, tmp_path: Path
) -> None:
    a = preserve(vault, 1, event_id=1, case_id=3)
    b = preserve(vault, 2, labels=["ncii"], event_id=2)
    vault.read(a.id, by="user:alice", reason="triage")
    with pytest.raises(InvalidValue, match="reason"):
        vault.export([a.id], tmp_path / "x", by="user:alice", reason="")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(InvalidValue, match="not an empty directory"):
        vault.export([a.id], tmp_path / "busy", by="user:alice", reason="r")

    out = tmp_path / "bundle"
    result = vault.export([a.id, b.id], out, by="user:alice", reason="NCMEC CyberTip 99")
    manifest = json.loads((out / "manifest.json").read_text())
    assert hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() == (
        result.manifest_sha256
    )
    assert manifest["reason"] == "NCMEC CyberTip 99" and manifest["created_by"] == "user:alice"
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == {
        "custody.json",
        f"evidence/{a.id}/content.png",
        f"evidence/{a.id}/context.json",
        f"evidence/{b.id}/content.png",
        f"evidence/{b.id}/context.json",
    }
    for rel, digest in listed.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert (out / f"evidence/{a.id}/content.png").read_bytes() == picture_bytes(1)
    record = json.loads((out / f"evidence/{a.id}/context.json").read_text())
    assert record["case_id"] == 3 and record["context"]["matches"] == [MATCH]
    assert (out.stat().st_mode & 0o777) == 0o700
    assert ((out / "custody.json").stat().st_mode & 0o777) == 0o600

    custody = json.loads((out / "custody.json").read_text())
    actions = [(e["object_id"], e["action"]) for e in custody["entries"]]
    assert actions == [
        (str(a.id), "vault_preserve"),
        (str(b.id), "vault_preserve"),
        (str(a.id), "vault_access"),
        (str(a.id), "vault_export"),
        (str(b.id), "vault_export"),
    ]
    for e in custody["entries"]:  # each entry's hash is recomputable from its fields
        from datetime import datetime

        fields = {k: e[k] for k in e if k not in ("hash", "at")}
        assert entry_hash(at=datetime.fromisoformat(e["at"]), **fields) == e["hash"]
    assert custody["audit_verified"]["ok"] is True
    head = AuditLog(db).head()
    assert custody["audit_head"] == {"last_id": head[0], "last_hash": head[1]}
    exports = vault.audit.list(action="vault_export")
    assert {x.details["export_id"] for x in exports} == {result.export_id}
    assert all(x.details["reason"] == "NCMEC CyberTip 99" for x in exports)

    check = verify_bundle(out)
    assert check.ok, check.problems
    assert check.entries == 5 and check.files == 5
    # a changed file, an added file and a changed custody entry are each found
    content = out / f"evidence/{b.id}/content.png"
    content.write_bytes(content.read_bytes() + b"x")
    (out / "extra.txt").write_text("planted")
    custody["entries"][0]["actor"] = "user:mallory"
    (out / "custody.json").write_text(json.dumps(custody))
    problems = verify_bundle(out).problems
    assert f"evidence/{b.id}/content.png: its SHA-256 is not the manifest's (it was changed)" in (
        problems
    )
    assert "extra.txt: not listed in the manifest (it was added)" in problems
    first = custody["entries"][0]["id"]
    assert f"custody entry {first}: its hash does not match its fields" in problems
    assert "custody.json: its SHA-256 is not the manifest's (it was changed)" in problems

    # the hook for bundles encrypted to a recipient
    sealer = RecipientSealer()
    sealed = vault.export([a.id], tmp_path / "sealed", by="user:alice", reason="r", sealer=sealer)
    names = {f["path"] for f in sealed.files}
    assert f"evidence/{a.id}/content.png.sealed" in names and sealer.sealed
    assert not (tmp_path / "sealed" / f"evidence/{a.id}/content.png").exists()
    m = json.loads((tmp_path / "sealed" / "manifest.json").read_text())
    assert m["sealed_with"] == "test-recipient" and verify_bundle(tmp_path / "sealed").ok


def test_a_failed_export_is_audited_and_leaves_no_partial_bundle(
    vault: EvidenceVault, tmp_path: Path
) -> None:
    item = preserve(vault)
    path = blob_file(vault, item.blob_id)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(EvidenceDamaged, match="does not authenticate"):
        vault.export([item.id], tmp_path / "out", by="user:a", reason="referral")
    assert not (tmp_path / "out").exists()
    assert [e.action for e in vault.custody(item.id)] == ["vault_preserve", "vault_export"]


# --------------------------------------------------------------------------- key rotation


def test_rotation_rewraps_every_data_key_and_the_old_key_is_no_longer_needed(
    db: Database, vault: EvidenceVault, key: MasterKey
) -> None:
    a = preserve(vault, 1)
    b = preserve(vault, 2, labels=["ncii"])
    with db.session() as s:
        content_before = {
            p: (vault.root / p).read_bytes() for p in s.scalars(select(VaultBlob.path))
        }
    new = MasterKey.generate()
    with pytest.raises(InvalidValue, match="configured key"):
        vault.rotate(key, by="cli:op")
    report = vault.rotate(new, by="cli:op")
    assert (report.old_key, report.new_key, report.rewrapped) == (key.id, new.id, 4)
    with db.session() as s:
        assert set(s.scalars(select(VaultKey.master_key_id))) == {new.id}
        states = {m.id: m.state for m in s.scalars(select(VaultMasterKey))}
        for p, data in content_before.items():  # no content re-encrypted
            assert (vault.root / p).read_bytes() == data
    assert states == {key.id: "retired", new.id: "active"}
    phases = [e.details["phase"] for e in vault.audit.list(action="vault_rotate")]
    assert phases == ["done", "start"]

    only_new = EvidenceVault(db, vault.root, new)
    assert only_new.read(a.id, by="user:a", reason="r").content == picture_bytes(1)
    assert only_new.read(b.id, by="user:a", reason="r").content == picture_bytes(2)
    preserve(only_new, 3)
    assert only_new.verify().ok
    with pytest.raises(VaultKeyError, match="retired by a key rotation"):
        EvidenceVault(db, vault.root, key).read(a.id, by="user:a", reason="r")
    with pytest.raises(InvalidValue, match="used by this vault before"):
        only_new.rotate(key, by="cli:op")


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    db: Database, vault: EvidenceVault, key: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safehold.refer.vault as vault_module

    items = [preserve(vault, i) for i in range(1, 4)]
    new = MasterKey.generate()
    real = vault_module._wrap
    calls: list[int] = []

    def dies_after_two(master: MasterKey, row_id: int, dek: bytes) -> str:
        if master.id == new.id:
            calls.append(row_id)
            if len(calls) > 2:
                raise ConnectionError("the worker died")
        return real(master, row_id, dek)

    monkeypatch.setattr(vault_module, "_wrap", dies_after_two)
    with pytest.raises(ConnectionError):
        vault.rotate(new, by="cli:op", batch=2)
    monkeypatch.setattr(vault_module, "_wrap", real)
    with db.session() as s:
        states = {m.id: m.state for m in s.scalars(select(VaultMasterKey))}
        assert states == {key.id: "retiring", new.id: "active"}
        under = dict(
            s.execute(
                select(VaultKey.master_key_id, func.count()).group_by(VaultKey.master_key_id)
            ).all()
        )
    assert under == {new.id: 2, key.id: 4}
    old_only = EvidenceVault(db, vault.root, key)
    with pytest.raises(VaultKeyError, match=r"rotation .* is unfinished"):
        preserve(old_only, 9)
    problems = old_only.verify(record=False).problems
    assert {p.kind for p in problems} == {"key_unavailable"}
    assert "which is not configured" in problems[0].message
    with pytest.raises(VaultKeyError, match=f"is to {new.id}"):
        old_only.rotate(MasterKey.generate(), by="cli:op")
    assert old_only.rotate(new, by="cli:op").rewrapped == 4
    fresh = EvidenceVault(db, vault.root, new)
    for i, item in enumerate(items, 1):
        assert fresh.read(item.id, by="user:a", reason="r").content == picture_bytes(i)
    assert fresh.verify().ok


# --------------------------------------------------------------------------- retention


def test_a_legal_hold_keeps_an_expired_item_until_released(
    db: Database, vault: EvidenceVault
) -> None:
    item = preserve(vault)
    later = utcnow() + timedelta(days=400)
    with pytest.raises(InvalidValue, match="reference"):
        vault.hold(item.id, by="user:lee", reason="court order", reference="")
    hold = vault.hold(item.id, by="user:lee", reason="preservation request", reference="LE-2026-1")
    assert vault.hold(item.id, by="user:lee", reason="again", reference="LE-2026-1").id == hold.id
    vault.hold(item.id, by="user:lee", reason="second matter", reference="CT-77")
    assert vault.get(item.id).on_hold
    assert [i.id for i in vault.list_items(on_hold=True)] == [item.id]
    assert vault.list_items(due=True, now=later) == []

    report = vault.expire(now=later)
    assert report.expired == [] and report.held == [item.id]
    with pytest.raises(InvalidValue, match="2 active holds"):
        vault.release(item.id, by="user:lee", reason="done")
    vault.release(item.id, by="user:lee", reason="order lifted", reference="LE-2026-1")
    assert vault.expire(now=later).held == [item.id]  # CT-77 still holds it
    released = vault.release(item.id, by="user:lee", reason="closed")
    assert released.reference == "CT-77" and released.release_reason == "closed"
    with pytest.raises(NotFound, match="not on hold"):
        vault.release(item.id, by="user:lee", reason="again")
    assert [i.id for i in vault.list_items(due=True, now=later)] == [item.id]
    assert vault.verify().ok
    assert vault.expire(now=later, dry_run=True).expired == [item.id]
    assert vault.expire(now=later).expired == [item.id]
    assert count(db, VaultItem) == 0 and count(db, VaultHold) == 0
    actions = [e.action for e in vault.custody(item.id)]
    assert actions == [
        "vault_preserve",
        "vault_hold",
        "vault_hold",
        "vault_release",
        "vault_release",
        "vault_expire",
    ]


def test_expiry_deletes_content_and_keys_and_leaves_a_tombstone(
    db: Database, tmp_path: Path, key: MasterKey
) -> None:
    vault = EvidenceVault(db, tmp_path / "vault", key, retention=Retention.parse("ncii=90"))
    csam = preserve(vault, 5, labels=["B1"], event_id=1, case_id=4, origin="event:1")
    ncii = preserve(vault, 5, labels=["ncii"], event_id=2, origin="event:2")  # same content
    assert csam.blob_id == ncii.blob_id
    assert (ncii.retain_until - ncii.preserved_at).days == 90
    path = blob_file(vault, csam.blob_id)
    assert vault.expire().expired == []  # nothing is due yet

    report = vault.expire(now=utcnow() + timedelta(days=100))
    assert report.expired == [ncii.id] and report.blobs_deleted == []
    assert path.is_file() and count(db, VaultKey) == 2  # the blob's key and csam's
    with pytest.raises(NotFound):
        vault.read(ncii.id, by="user:a", reason="r")
    assert vault.read(csam.id, by="user:a", reason="r").content == picture_bytes(5)

    report = vault.expire(now=utcnow() + timedelta(days=400))
    assert report.expired == [csam.id] and report.blobs_deleted == [csam.blob_id]
    assert not path.exists()
    assert count(db, VaultItem) == 0 and count(db, VaultBlob) == 0 and count(db, VaultKey) == 0
    tombstones = vault.audit.list(action="vault_expire")
    assert [t.object_id for t in tombstones] == [str(csam.id), str(ncii.id)]
    last, first = tombstones
    assert first.actor == "system" and last.actor == "system"
    assert first.details["sha256"] == ncii.sha256 and first.details["content_deleted"] is False
    assert last.details["content_deleted"] is True and last.details["case_id"] == 4
    assert "retention ended" in last.details["why"] and "not on legal hold" in last.details["why"]
    assert vault.verify().ok  # the tombstones account for the missing items
    # the same content again is a new blob (the old one and its key are gone)
    again = preserve(vault, 5, labels=["B1"], origin="event:1")
    assert again.created and again.blob_id != csam.blob_id


def test_the_periodic_job_expires(db: Database, tmp_path: Path, key: MasterKey) -> None:
    spec = HANDLERS["vault_expire"]
    assert spec.periodic
    jobs = Jobs.from_url("memory://", db.url)
    ctx = worker_context(db, jobs)
    assert ctx.vault is None  # no key configured: nothing to do
    spec.func(ctx)
    vault = EvidenceVault(db, tmp_path / "vault", key, retention=Retention(default_days=1))
    item = preserve(vault)
    with db.session() as s:
        s.execute(
            update(VaultItem).values(retain_until=utcnow() - timedelta(seconds=1))
        )  # (an edit the sealed record notices, but expiry only reads the column)
    ctx.vault = vault
    spec.func(ctx)
    assert count(db, VaultItem) == 0
    [tomb] = vault.audit.list(action="vault_expire")
    assert tomb.object_id == str(item.id)
    jobs.close()


# --------------------------------------------------------------------------- tampering


def test_a_flipped_byte_in_a_blob_is_detected(vault: EvidenceVault) -> None:
    item = preserve(vault)
    path = blob_file(vault, item.blob_id)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    [problem] = vault.verify(record=False).problems
    assert problem.kind == "blob_changed" and problem.object == f"blob {item.blob_id}"
    assert "was changed: it does not authenticate at chunk 0" in problem.message
    assert "SHA-256 is not the one recorded" in problem.message
    with pytest.raises(EvidenceDamaged, match="does not authenticate"):
        vault.read(item.id, by="user:a", reason="r")


def test_swapped_blob_files_are_detected(vault: EvidenceVault) -> None:
    a = preserve(vault, 1)
    b = preserve(vault, 2)
    pa, pb = blob_file(vault, a.blob_id), blob_file(vault, b.blob_id)
    da, db_ = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db_)
    pb.write_bytes(da)
    problems = vault.verify(record=False).problems
    assert [(p.kind, p.object) for p in problems] == [
        ("blob_swapped", f"blob {a.blob_id}"),
        ("blob_swapped", f"blob {b.blob_id}"),
    ]
    assert f"holds blob {b.blob_id}'s ciphertext: files were swapped" in problems[0].message
    with pytest.raises(EvidenceDamaged, match="holds the ciphertext of blob uid"):
        vault.read(a.id, by="user:a", reason="r")


def test_an_edited_context_row_is_detected(db: Database, vault: EvidenceVault) -> None:
    item = preserve(vault, 1, event_id=5, case_id=7)
    other = preserve(vault, 2)
    with db.session() as s:
        s.execute(update(VaultItem).where(VaultItem.id == item.id).values(case_id=99))
    [problem] = vault.verify(record=False).problems
    assert (problem.kind, problem.object) == ("item_changed", f"item {item.id}")
    assert "case_id is 99 in the database but 7 in the sealed record" in problem.message
    with pytest.raises(EvidenceDamaged, match="case_id is 99"):
        vault.read(item.id, by="user:a", reason="r")
    # a retention date moved forward to delete early is caught the same way
    with db.session() as s:
        s.execute(update(VaultItem).where(VaultItem.id == item.id).values(case_id=7))
        s.execute(
            update(VaultItem)
            .where(VaultItem.id == other.id)
            .values(retain_until=utcnow() - timedelta(days=1))
        )
    [problem] = vault.verify(record=False).problems
    assert problem.object == f"item {other.id}" and "retain_until is" in problem.message
    # and the sealed bytes themselves
    with db.session() as s:
        s.execute(
            update(VaultItem)
            .where(VaultItem.id == other.id)
            .values(retain_until=other.retain_until)
        )
        sealed = bytearray(base64.b64decode(s.get_one(VaultItem, item.id).context))
        sealed[20] ^= 1
        s.execute(
            update(VaultItem)
            .where(VaultItem.id == item.id)
            .values(context=base64.b64encode(bytes(sealed)).decode())
        )
    [problem] = vault.verify(record=False).problems
    assert problem.object == f"item {item.id}"
    assert "sealed context does not authenticate" in problem.message


def test_a_deleted_audit_row_is_detected(db: Database, vault: EvidenceVault) -> None:
    item = preserve(vault)
    vault.read(item.id, by="user:a", reason="r")
    vault.hold(item.id, by="user:a", reason="r", reference="REF-1")
    [access] = vault.audit.list(action="vault_access")
    with db.session() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id == access.id))
    check = vault.verify(record=False)
    assert [(p.kind, p.object) for p in check.problems] == [("audit_broken", f"audit {access.id}")]
    assert f"entry {access.id} is missing (deleted)" in check.problems[0].message
    assert not check.audit.ok


def test_rows_changed_outside_the_vault_are_detected(db: Database, vault: EvidenceVault) -> None:
    a = preserve(vault, 1)
    b = preserve(vault, 2)
    c = preserve(vault, 3)
    hold = vault.hold(a.id, by="user:a", reason="r", reference="REF-1")
    with db.session() as s:
        b_key = s.get_one(VaultItem, b.id).key_id
        # a hold lifted by editing the row, an item deleted, a blob's digest changed
        s.execute(update(VaultHold).where(VaultHold.id == hold.id).values(released_at=utcnow()))
        s.execute(delete(VaultItem).where(VaultItem.id == b.id))
        s.execute(update(VaultBlob).where(VaultBlob.id == c.blob_id).values(sha256="0" * 64))
    found = kinds(vault)
    assert ("hold_changed", f"hold {hold.id}") in found
    assert ("item_missing", f"item {b.id}") in found
    assert ("orphan", f"blob {b.blob_id}") in found
    assert ("orphan", f"key {b_key}") in found
    assert ("blob_record_changed", f"blob {c.blob_id}") in found
    assert ("item_changed", f"item {c.id}") in found  # its sha256 is no longer its blob's


def test_stray_files_and_loose_modes_are_reported(vault: EvidenceVault) -> None:
    item = preserve(vault)
    path = blob_file(vault, item.blob_id)
    stray = path.parent / "planted.vault"
    stray.write_bytes(b"x")
    old = utcnow().timestamp() - 3600
    os.utime(stray, (old, old))
    os.chmod(path, 0o644)
    os.chmod(vault.root, 0o755)
    found = kinds(vault)
    assert ("stray_file", stray.relative_to(vault.root).as_posix()) in found
    assert ("permissions", path.relative_to(vault.root).as_posix()) in found
    assert ("permissions", str(vault.root)) in found


def test_verify_is_audited(vault: EvidenceVault) -> None:
    preserve(vault)
    assert vault.verify(by="cli:op").ok
    [entry] = vault.audit.list(action="vault_verify")
    assert entry.actor == "cli:op" and entry.details["ok"] is True


# --------------------------------------------------------------------------- master keys


def test_missing_or_invalid_master_keys_are_clear_errors(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SAFEHOLD_VAULT_KEY", "SAFEHOLD_VAULT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        VaultNotConfigured, match=r"SAFEHOLD_VAULT_KEY .* or SAFEHOLD_VAULT_KEY_FILE"
    ):
        EvidenceVault.from_env(db)
    assert vault_from_env(db) is None
    cases = {
        "not base64!": "not valid base64",
        base64.b64encode(b"short").decode(): "decodes to 5 bytes",
        "": None,
    }
    for value, message in cases.items():
        if message is None:
            assert load_master_key({"SAFEHOLD_VAULT_KEY": value}) is None
            continue
        with pytest.raises(VaultKeyError, match=message):
            load_master_key({"SAFEHOLD_VAULT_KEY": value})
    good = MasterKey.generate()
    assert load_master_key({"SAFEHOLD_VAULT_KEY": good.encode()}) == good
    with pytest.raises(VaultKeyError, match="not both"):
        load_master_key({"SAFEHOLD_VAULT_KEY": good.encode(), "SAFEHOLD_VAULT_KEY_FILE": "/x"})
    key_file = tmp_path / "vault.key"
    key_file.write_text(good.encode() + "\n")
    os.chmod(key_file, 0o644)
    with pytest.raises(VaultKeyError, match=r"mode 0644: others may read it.*chmod 600"):
        load_master_key({"SAFEHOLD_VAULT_KEY_FILE": str(key_file)})
    os.chmod(key_file, 0o600)
    assert load_master_key({"SAFEHOLD_VAULT_KEY_FILE": str(key_file)}) == good
    with pytest.raises(VaultKeyError, match="does not exist"):
        load_master_key({"SAFEHOLD_VAULT_KEY_FILE": str(tmp_path / "nope")})
    assert "secret" not in repr(good) and good.encode() not in repr(good)

    # a key that is not this vault's
    EvidenceVault(db, tmp_path / "v", good).preserve(b"evidence", by="system:test")
    other = EvidenceVault(db, tmp_path / "v", MasterKey.generate())
    with pytest.raises(
        VaultKeyError, match=f"is not a key of this vault .*current key is {good.id}"
    ):
        other.preserve(b"more", by="system:test")
    with pytest.raises(VaultKeyError, match="is not a key of this vault"):
        other.verify()

    # a service with a broken key keeps running; the vault's operations fail clearly
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", "abc")
    broken = vault_from_env(db)
    assert broken is not None and broken.key is None
    with pytest.raises(VaultKeyError, match=r"SAFEHOLD_VAULT_KEY is not valid base64|decodes to"):
        broken.preserve(b"x", by="system:test")


# --------------------------------------------------------------------------- the preserve action

PRESERVE_RULES = """
rules:
  - name: known-abuse
    when:
      match: {labels: [A1]}
    actions:
      - block
      - review: {queue: urgent}
      - preserve: {days: 400}
"""


@pytest.fixture()
def with_vault_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: MasterKey
) -> Iterator[Path]:
    root = tmp_path / "vault-dir"
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", key.encode())
    monkeypatch.setenv("SAFEHOLD_VAULT_DIR", str(root))
    yield root


def test_the_preserve_action_preserves_once_through_the_job_queue(
    db: Database, tmp_path: Path, with_vault_env: Path, key: MasterKey
) -> None:
    jobs = Jobs.from_url(f"sqlite:///{tmp_path / 'queue.jobs'}", db.url)
    ctx = worker_context(db, jobs)
    assert ctx.vault is not None and ctx.vault.root == with_vault_env
    ctx.media.root = tmp_path / "media"
    ctx.rulesets.save(PRESERVE_RULES, tenant="acme")
    ctx.rulesets.forget("acme")
    policy = Policy(db, rulesets=ctx.rulesets, jobs=jobs, media=ctx.media, audit=ctx.audit)
    upload = tmp_path / "upload.png"
    upload.write_bytes(picture_bytes(11))
    hashes = hash_file(upload)
    out = policy.decide(
        Context(
            tenant="acme",
            content_id="post-9",
            account_id="acct-9",
            matches=[MATCH],
            account={"age_days": 1},
            signals=hashes.to_json(),
        ),
        upload_path=str(upload),
        hashes=hashes,
    )
    assert out.actions == ["review", "preserve"]
    jobs.enqueue("run_actions", out.event_id)  # the job twice (a retry, a duplicate)
    try:
        jobs.start_worker(ctx, workers=2)

        def finished() -> bool:
            with db.session() as s:
                ev = s.get_one(Event, out.event_id, populate_existing=True)
                return all(a.get("state") == "done" for a in ev.actions)

        wait_for(finished)
        wait_for(lambda: jobs.pending() == 0)
    finally:
        jobs.stop()
    assert count(db, VaultItem) == 1 and count(db, VaultBlob) == 1
    [item] = ctx.vault.list_items(tenant="acme")
    [case] = ctx.cases.list_cases("acme").cases
    assert (item.event_id, item.case_id, item.content_id) == (out.event_id, case.id, "post-9")
    assert item.origin == f"event:{out.event_id}" and item.labels == ["A1"]
    assert (item.retain_until - item.preserved_at).days == 400  # the rule's days
    evidence = ctx.vault.read(item.id, by="user:lee", reason="referral")
    assert evidence.content == upload.read_bytes()
    ctx_record = evidence.context
    assert ctx_record["input"]["matches"] == [MATCH]
    assert ctx_record["input"]["account"]["age_days"] == 1
    assert ctx_record["account_id"] == "acct-9" and ctx_record["rule"] == "known-abuse"
    assert ctx_record["upload"]["sha256"] == hashes.sha256
    assert ctx_record["upload"]["format"] == "png"
    assert ctx_record["event"]["decision"] == "block"
    with db.session() as s:
        ev = s.get_one(Event, out.event_id)
        [preserve_state] = [a for a in ev.actions if a["kind"] == "preserve"]
    assert preserve_state["result"]["vault_item_id"] == item.id
    [audited] = ctx.audit.list(action="preserve")
    assert audited.details["vault_item_id"] == item.id
    assert len(ctx.audit.list(action="vault_preserve")) == 1
    jobs.close()


def test_a_crash_after_the_vault_write_does_not_preserve_twice(
    db: Database, tmp_path: Path, with_vault_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.actions.run import run_actions

    jobs = Jobs.from_url("memory://", db.url)
    ctx = worker_context(db, jobs)
    ctx.media.root = tmp_path / "media"
    ctx.rulesets.save(PRESERVE_RULES, tenant="acme")
    ctx.rulesets.forget("acme")
    policy = Policy(db, rulesets=ctx.rulesets, jobs=jobs, media=ctx.media, audit=ctx.audit)
    upload = tmp_path / "upload.png"
    upload.write_bytes(picture_bytes(12))
    hashes = hash_file(upload)
    out = policy.decide(
        Context(tenant="acme", matches=[MATCH], signals=hashes.to_json()),
        upload_path=str(upload),
        hashes=hashes,
    )
    real = ctx.media.preserve
    calls: list[int] = []

    def dies_once(media_id: int, **kw: Any) -> Any:
        calls.append(media_id)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return real(media_id, **kw)

    monkeypatch.setattr(ctx.media, "preserve", dies_once)
    with pytest.raises(RuntimeError, match="to retry"):
        run_actions(ctx, out.event_id)
    assert count(db, VaultItem) == 1  # stored before the crash
    assert run_actions(ctx, out.event_id).done == ["preserve"]
    assert count(db, VaultItem) == 1 and len(calls) == 2
    jobs.close()


def test_without_a_vault_preserve_still_marks_the_media(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.actions.run import run_actions

    monkeypatch.delenv("SAFEHOLD_VAULT_KEY", raising=False)
    monkeypatch.delenv("SAFEHOLD_VAULT_KEY_FILE", raising=False)
    jobs = Jobs.from_url("memory://", db.url)
    ctx = worker_context(db, jobs)
    assert ctx.vault is None
    ctx.media.root = tmp_path / "media"
    ctx.rulesets.save(PRESERVE_RULES, tenant="acme")
    ctx.rulesets.forget("acme")
    policy = Policy(db, rulesets=ctx.rulesets, jobs=jobs, media=ctx.media, audit=ctx.audit)
    upload = tmp_path / "upload.png"
    upload.write_bytes(picture_bytes(13))
    hashes = hash_file(upload)
    out = policy.decide(
        Context(tenant="acme", matches=[MATCH], signals=hashes.to_json()),
        upload_path=str(upload),
        hashes=hashes,
    )
    assert run_actions(ctx, out.event_id).done == ["review", "preserve"]
    assert count(db, VaultItem) == 0
    assert ctx.media.info(out.media_id or 0).preserved
    jobs.close()


def test_a_bad_vault_key_fails_the_preserve_action_for_a_retry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.actions.run import run_actions

    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", "too-short")
    monkeypatch.setenv("SAFEHOLD_VAULT_DIR", str(tmp_path / "v"))
    jobs = Jobs.from_url("memory://", db.url)
    ctx = worker_context(db, jobs)
    ctx.media.root = tmp_path / "media"
    ctx.rulesets.save(PRESERVE_RULES, tenant="acme")
    ctx.rulesets.forget("acme")
    policy = Policy(db, rulesets=ctx.rulesets, jobs=jobs, media=ctx.media, audit=ctx.audit)
    upload = tmp_path / "upload.png"
    upload.write_bytes(picture_bytes(14))
    hashes = hash_file(upload)
    out = policy.decide(
        Context(tenant="acme", matches=[MATCH], signals=hashes.to_json()),
        upload_path=str(upload),
        hashes=hashes,
    )
    with pytest.raises(RuntimeError, match="to retry"):
        run_actions(ctx, out.event_id)
    with db.session() as s:
        states = {a["kind"]: a for a in s.get_one(Event, out.event_id).actions}
    assert states["review"]["state"] == "done"
    assert states["preserve"]["state"] == "failed"
    assert "SAFEHOLD_VAULT_KEY" in states["preserve"]["error"]
    assert count(db, VaultItem) == 0
    jobs.close()

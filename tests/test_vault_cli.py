"""`safehold vault list|show|hold|release|expire|verify|export|rotate-key|keygen` over
items preserved through the library (SQLite and PostgreSQL). Content is drawn by code."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from api_helpers import picture_bytes
from safehold.cli import app
from safehold.refer.vault import EvidenceVault, MasterKey, read_key_file
from safehold.store import Database
from safehold.store.models import VaultBlob, VaultItem, utcnow

RUNNER = CliRunner()


def run(db_url: str, *args: str, code: int = 0, input: str | None = None) -> str:
    result = RUNNER.invoke(app, ["--db", db_url, *args], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    if "--json" in args:
        return result.stdout  # without log lines on stderr
    return " ".join(result.output.split())  # as read, not as a terminal wraps it


@pytest.fixture()
def key_file(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "vault.key"
    out = run(db_url, "vault", "keygen", str(path), "--json")
    assert json.loads(out)["key_id"].startswith("mk_")
    assert (path.stat().st_mode & 0o777) == 0o600
    monkeypatch.delenv("SAFEHOLD_VAULT_KEY", raising=False)
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY_FILE", str(path))
    monkeypatch.setenv("SAFEHOLD_VAULT_DIR", str(tmp_path / "vault"))
    monkeypatch.setenv("USER", "olive")
    yield path


@pytest.fixture()
def items(db_url: str, key_file: Path, tmp_path: Path) -> Iterator[list[int]]:
    with Database(db_url) as db:
        vault = EvidenceVault(db, tmp_path / "vault", read_key_file(key_file))
        ids = [
            vault.preserve(
                picture_bytes(seed),
                by="system:rules",
                labels=labels,
                context={"upload": {"format": "png"}, "account": {"marker": f"m{seed}"}},
                event_id=seed,
                case_id=10 + seed,
            ).id
            for seed, labels in ((1, ["A1"]), (2, ["ncii"]))
        ]
        yield ids


def test_keygen_never_overwrites_and_never_prints_the_key(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "k"
    out = run(db_url, "vault", "keygen", str(path))
    key = read_key_file(path)
    assert key.id in out and key.encode() not in out
    out = run(db_url, "vault", "keygen", str(path), code=2)
    assert "exists" in out.lower()
    assert read_key_file(path) == key


def test_without_a_key_the_commands_say_what_to_set(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFEHOLD_VAULT_KEY", raising=False)
    monkeypatch.delenv("SAFEHOLD_VAULT_KEY_FILE", raising=False)
    out = run(db_url, "vault", "list", code=2)
    assert "SAFEHOLD_VAULT_KEY" in out and "SAFEHOLD_VAULT_KEY_FILE" in out
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", "bad")
    out = json.loads(run(db_url, "vault", "verify", "--json", code=2))
    assert out["error"]["code"] == "vault_key" and "base64" in out["error"]["message"]


def test_list_show_hold_release(db_url: str, items: list[int]) -> None:
    a, b = items
    listed = json.loads(run(db_url, "vault", "list", "--json"))["items"]
    assert [i["id"] for i in listed] == [b, a]
    assert [i["category"] for i in listed] == ["ncii", "csam"]
    table = run(db_url, "vault", "list")
    assert "csam" in table and "ncii" in table
    assert json.loads(run(db_url, "vault", "list", "--case", "11", "--json"))["items"][0]["id"] == a

    shown = run(db_url, "vault", "show", str(a))
    assert f"item {a}: csam" in shown and "vault_preserve by system:rules" in shown
    assert "m1" not in shown  # nothing decrypted without --context
    out = run(db_url, "vault", "show", str(a), "--context", code=2)
    assert "--reason is required" in out
    data = json.loads(
        run(db_url, "vault", "show", str(a), "--context", "--reason", "triage", "--json")
    )
    assert data["record"]["context"]["account"]["marker"] == "m1"
    assert [e["action"] for e in data["custody"]] == ["vault_preserve"]  # read before access
    shown = run(db_url, "vault", "show", str(a))
    assert "vault_access by cli:olive: triage" in shown

    out = run(db_url, "vault", "hold", str(a), "--reason", "court order", code=2)
    assert "--reference is required" in out
    out = run(db_url, "vault", "hold", str(a), str(b), "--reference", "LE-7", "--reason", "order")
    assert f"item {a}: on hold LE-7" in out and f"item {b}: on hold LE-7" in out
    held = json.loads(run(db_url, "vault", "list", "--held", "--json"))["items"]
    assert {i["id"] for i in held} == {a, b}
    assert "ON HOLD (LE-7)" in run(db_url, "vault", "show", str(a))
    out = run(db_url, "vault", "release", str(b), "--reason", "lifted", "--json")
    assert json.loads(out)["released"][0]["reference"] == "LE-7"
    assert [
        i["id"] for i in json.loads(run(db_url, "vault", "list", "--held", "--json"))["items"]
    ] == [a]
    out = run(db_url, "vault", "release", str(b), "--reason", "again", code=2)
    assert "not on hold" in out
    out = run(db_url, "vault", "show", "999", code=2)
    assert "no evidence item" in out


def test_expire_keeps_held_items(db_url: str, items: list[int]) -> None:
    a, b = items
    run(db_url, "vault", "hold", str(a), "--reference", "LE-8", "--reason", "order")
    with Database(db_url) as db, db.session() as s:
        s.execute(update(VaultItem).values(retain_until=utcnow() - timedelta(days=1)))
    dry = json.loads(run(db_url, "vault", "expire", "--dry-run", "--json"))
    assert dry == {"expired": [b], "blobs_deleted": [], "held": [a], "dry_run": True}
    out = run(db_url, "vault", "expire")
    assert "deleted 1 items (1 blobs); 1 past retention kept on hold" in out
    assert [i["id"] for i in json.loads(run(db_url, "vault", "list", "--json"))["items"]] == [a]
    tomb = json.loads(run(db_url, "audit", "list", "--action", "vault_expire", "--json"))
    assert tomb["actor"] == "system" and tomb["object_id"] == str(b)


def test_export_verify_and_tampering(db_url: str, items: list[int], tmp_path: Path) -> None:
    a, b = items
    out = run(db_url, "vault", "verify")
    assert "vault intact: 2 items, 2 blobs, 4 data keys" in out
    bundle = tmp_path / "bundle"
    out = run(db_url, "vault", "export", str(a), str(b), "--to", str(bundle), code=2)
    assert "--reason is required" in out
    out = run(db_url, "vault", "export", str(a), str(b), "--to", str(bundle), "--reason", "CT-1")
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert digest in out and (bundle / f"evidence/{a}/content.png").read_bytes() == picture_bytes(1)
    out = run(db_url, "vault", "verify", "--bundle", str(bundle))
    assert "bundle intact: 5 files and 4 custody entries check out" in out
    (bundle / f"evidence/{b}/context.json").write_text("{}")
    out = run(db_url, "vault", "verify", "--bundle", str(bundle), code=1)
    assert f"evidence/{b}/context.json: its SHA-256 is not the manifest's" in out

    with Database(db_url) as db, db.session() as s:
        rel = s.get_one(VaultBlob, s.get_one(VaultItem, a).blob_id).path
    path = tmp_path / "vault" / rel
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    out = run(db_url, "vault", "verify", code=1)
    assert (
        "blob_changed: blob" in out and "was changed" in out and "vault BROKEN: 1 problems" in out
    )
    report = json.loads(run(db_url, "vault", "verify", "--json", code=1))
    assert [p["kind"] for p in report["problems"]] == ["blob_changed"]


def test_rotate_key_reads_the_new_key_from_stdin_or_a_file(
    db_url: str,
    items: list[int],
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = items
    old = read_key_file(key_file)
    out = run(db_url, "vault", "rotate-key", input="\n", code=2)
    assert "no new key on standard input" in out
    out = run(db_url, "vault", "rotate-key", input="not-a-key\n", code=2)
    assert "the new key on standard input" in out
    loose = tmp_path / "loose.key"
    loose.write_text(MasterKey.generate().encode())
    os.chmod(loose, 0o644)
    out = run(db_url, "vault", "rotate-key", "--new-key-file", str(loose), code=2)
    assert "others may read it" in out

    new = MasterKey.generate()
    out = run(db_url, "vault", "rotate-key", input=new.encode() + "\n")
    assert f"4 data keys re-wrapped from {old.id} to {new.id}" in out
    assert new.encode() not in out and "destroy it" in out
    run(db_url, "vault", "list")  # listing decrypts nothing
    out = run(db_url, "vault", "show", str(a), "--context", "--reason", "r", code=2)
    assert "retired by a key rotation" in out
    monkeypatch.delenv("SAFEHOLD_VAULT_KEY_FILE")
    monkeypatch.setenv("SAFEHOLD_VAULT_KEY", new.encode())
    assert "vault intact" in run(db_url, "vault", "verify")
    newer = tmp_path / "newer.key"
    run(db_url, "vault", "keygen", str(newer))
    out = run(db_url, "vault", "rotate-key", "--new-key-file", str(newer), "--json")
    assert json.loads(out) == {
        "old_key": new.id,
        "new_key": read_key_file(newer).id,
        "rewrapped": 4,
    }

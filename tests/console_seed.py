"""Synthetic data for the review console: users, a bank of drawn pictures, rules, scans.

Used by ``tests/test_console*.py`` and by ``scripts/console-screenshots``. Every picture
and video is drawn by code (:mod:`safehold.demo`, :mod:`tests.media_factory`); the
labels attached to them are illustrative only. The passwords are fixed test values for
throw-away databases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safehold.access import ApiKeys
from safehold.access.users import Users
from safehold.audit import AuditLog
from safehold.banks.entries import make_entry
from safehold.banks.repository import Banks
from safehold.demo import DemoResult, create_demo, synthetic_picture
from safehold.hashing import hash_file
from safehold.rules.store import RuleSets
from safehold.store import Database

PASSWORD = "synthetic-test-password-1"
"""The password of every seeded user (throw-away test databases only)."""

USERS = {
    "alice": "admin",
    "rita": "reviewer",
    "remy": "reviewer",
    "leo": "lead",
    "aude": "auditor",
}

RULES = """\
# Console demo rules: every block-bank match is blocked and reviewed.
mode: all-match
default: allow
rules:
  - name: known-csam-urgent
    description: Known CSAM of the most severe grades goes to the urgent queue.
    priority: 100
    when:
      match: {kind: block, labels: [A1, A2]}
    actions:
      - block
      - review: {queue: urgent, sla: 4h}
      - notify: {to: lead, message: "Urgent case {case_id}: {labels} on account {account_id}"}
  - name: known-csam
    description: Other bank matches are blocked and reviewed in the default queue.
    priority: 50
    when:
      all:
        - match: {kind: block}
        - not: {match: {kind: block, labels: [A1, A2]}}
    actions:
      - block
      - review: {queue: default}
  - name: partner-webhook
    description: Tell the trust-and-safety backend about every block.
    priority: 10
    when:
      match: {kind: block}
    actions:
      - webhook: {url: "http://127.0.0.1:9/safehold-hook", secret_env: SAFEHOLD_DEMO_HOOK_SECRET}
  - name: repeat-account
    description: Dry run - would hold uploads of accounts with earlier matches.
    priority: 5
    shadow: true
    when:
      account: {prior_matches: {gte: 1}}
    actions:
      - hold
"""


@dataclass
class Seeded:
    key: str
    demo: DemoResult
    video: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def seed_users(db: Database, users: dict[str, str] | None = None) -> None:
    accounts = Users(db, AuditLog(db))
    for name, role in (users or USERS).items():
        accounts.create(name, PASSWORD, role, by="cli")


def seed(
    db: Database,
    directory: Path,
    *,
    users: bool = True,
    rules: bool = False,
    video: bool = False,
) -> Seeded:
    """Users, the demo bank, an API key with the ``scan`` scope (and optionally the demo
    rules and a synthetic video whose MD5 is in a bank)."""
    if users:
        seed_users(db)
    demo = create_demo(db, directory / "demo")
    key, _ = ApiKeys(db).create(scopes=["scan"], tenant="default", name="console-test")
    result = Seeded(key=key, demo=demo)
    if rules:
        RuleSets(db).save(RULES, created_by="cli", note="console demo rules")
    if video:
        from tests.media_factory import write_video

        path = write_video(directory / "clip.mp4", seconds=2.0, fps=8, size=(192, 144), seed=7)
        banks = Banks(db)
        banks.create("clips", description="Synthetic clips (drawn frames)")
        entry = make_entry("md5", hash_file(path).md5, ["B2"], "local", "clip-7", "synthetic")
        banks.add("clips", [entry], added_by="console test")
        result.video = path
    return result


def picture(directory: Path, seed_value: int) -> Path:
    """A drawn picture that is in no bank."""
    path = directory / f"unmatched-{seed_value}.png"
    synthetic_picture(seed_value).save(path, "PNG")
    return path


def scan(
    client: Any, key: str, path: Path, *, account_id: str | None, content_id: str, **form: Any
) -> dict[str, Any]:
    """``POST /v1/scan`` of ``path`` with an account and content id (httpx-like client)."""
    data = {"content_id": content_id, **form}
    if account_id:
        data["account_id"] = account_id
    r = client.post(
        "/v1/scan",
        files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
        data=data,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body

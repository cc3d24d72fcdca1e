"""Shared set-up for the intake tests: a service on a fresh database, people, reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher

from safehold.access.users import UserInfo, Users
from safehold.intake import NewReport
from safehold.intake.receipts import Receipt
from safehold.store import Database
from safehold.web.service import Service

PASSWORD = "correct horse battery staple"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def cheap_hashing(monkeypatch: Any) -> None:
    """argon2 at its cheapest: the tests make many receipts and users."""
    import safehold.access.users
    import safehold.intake.receipts

    monkeypatch.setattr(safehold.access.users, "_hasher", CHEAP)
    monkeypatch.setattr(safehold.intake.receipts, "_hasher", CHEAP)
    monkeypatch.setattr(safehold.intake.receipts, "_DUMMY", CHEAP.hash("x"))


@dataclass
class Hotline:
    db: Database
    svc: Service
    people: dict[str, UserInfo]

    def report(self, **kw: Any) -> Receipt:
        args: dict[str, Any] = {"category": "child_sexual_abuse", "urls": "https://example.com/a"}
        args.update(kw)
        return self.svc.reports.submit(NewReport(**args))


def hotline(db: Database) -> Hotline:
    svc = Service.open(db)
    users = Users(db, svc.audit)
    people = {
        name: users.create(name, PASSWORD, role)
        for name, role in [
            ("rita", "reviewer"),
            ("rob", "reviewer"),
            ("lee", "lead"),
            ("aud", "auditor"),
        ]
    }
    return Hotline(db, svc, people)

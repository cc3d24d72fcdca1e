"""Whom notices go to: the operator's list of hosting providers, per domain.

A URL's host is looked up from the most specific name up to its registrable domain
(``cdn.files.example.co.uk`` → ``files.example.co.uk`` → ``example.co.uk``), so a
contact for a whole provider and one for a single customer's site can both be kept.
Without an entry, a takedown goes to ``abuse@`` the registrable domain (RFC 2142),
marked as a guess in the console.
"""

from __future__ import annotations

import builtins
import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from safehold.audit import AuditLog, actor_of
from safehold.cases.model import iso
from safehold.errors import InvalidValue, preview
from safehold.intake.fields import clean_email, clean_line, clean_text
from safehold.intake.templates import check_jurisdiction
from safehold.signals.url import registrable_domain
from safehold.store.db import Database
from safehold.store.models import HostContact, utcnow

DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")


def check_domain(value: object) -> str:
    text = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    try:
        text = text.encode("idna").decode("ascii") if text and not text.isascii() else text
    except UnicodeError:
        text = ""
    if not DOMAIN.fullmatch(text):
        raise InvalidValue(f"not a domain name: {preview(value)} (e.g. example.org)")
    return text


@dataclass(frozen=True)
class ContactInfo:
    id: int
    domain: str
    name: str
    email: str
    abuse_url: str
    jurisdiction: str
    notes: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "domain": self.domain,
            "name": self.name,
            "email": self.email,
            "abuse_url": self.abuse_url,
            "jurisdiction": self.jurisdiction,
            "notes": self.notes,
            "updated_at": iso(self.updated_at),
        }


def _contact(row: HostContact) -> ContactInfo:
    return ContactInfo(
        int(row.id),
        row.domain,
        row.name,
        row.email,
        row.abuse_url,
        row.jurisdiction,
        row.notes,
        row.updated_at,
    )


CONTACT_FIELDS = ("domain", "name", "email", "abuse_url", "jurisdiction", "notes")


class HostContacts:
    """The operator's list of whom to send notices to, per domain."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def list(self, tenant: str) -> builtins.list[ContactInfo]:
        with self.db.session() as s:
            rows = s.scalars(
                select(HostContact).where(HostContact.tenant == tenant).order_by(HostContact.domain)
            )
            return [_contact(r) for r in rows]

    def put(
        self,
        tenant: str,
        *,
        domain: str,
        name: str = "",
        email: str = "",
        abuse_url: str = "",
        jurisdiction: str = "default",
        notes: str = "",
        by: object = "system",
    ) -> ContactInfo:
        values = {
            "domain": check_domain(domain),
            "name": clean_line(name, "the name"),
            "email": clean_email(email),
            "abuse_url": clean_line(abuse_url, "the abuse form address", 2048),
            "jurisdiction": check_jurisdiction(jurisdiction or "default"),
            "notes": clean_text(notes, 4000, "the notes"),
        }
        if values["abuse_url"] and not values["abuse_url"].startswith(("https://", "http://")):
            raise InvalidValue("the abuse form address must start with https:// or http://")
        actor = actor_of(by)
        with self.db.session() as s:
            row = s.scalar(
                select(HostContact).where(
                    HostContact.tenant == tenant, HostContact.domain == values["domain"]
                )
            )
            if row is None:
                row = HostContact(tenant=tenant, domain=values["domain"])
                s.add(row)
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            s.flush()
            self.audit.append(
                actor,
                "host_contact_change",
                object_type="host_contact",
                object_id=values["domain"],
                details={"change": "put"},
                tenant=tenant,
                session=s,
            )
            return _contact(row)

    def delete(self, tenant: str, domain: str, *, by: object = "system") -> bool:
        name = check_domain(domain)
        with self.db.session() as s:
            row = s.scalar(
                select(HostContact).where(HostContact.tenant == tenant, HostContact.domain == name)
            )
            if row is None:
                return False
            s.delete(row)
            self.audit.append(
                actor_of(by),
                "host_contact_change",
                object_type="host_contact",
                object_id=name,
                details={"change": "delete"},
                tenant=tenant,
                session=s,
            )
            return True

    def import_csv(self, tenant: str, text: str, *, by: object = "system") -> int:
        """Rows of ``domain,name,email,abuse_url,jurisdiction,notes`` (a header row is
        optional). All rows are checked first; any bad row changes nothing."""
        rows = list(csv.reader(io.StringIO(text)))
        if rows and [c.strip().lower() for c in rows[0]][:1] == ["domain"]:
            rows = rows[1:]
        parsed: list[dict[str, str]] = []
        errors: list[str] = []
        for n, row in enumerate(rows, 1):
            if not any(c.strip() for c in row):
                continue
            values = dict(zip(CONTACT_FIELDS, (c.strip() for c in row), strict=False))
            try:
                check_domain(values.get("domain", ""))
                clean_email(values.get("email", ""))
                if values.get("jurisdiction"):
                    check_jurisdiction(values["jurisdiction"])
            except InvalidValue as e:
                errors.append(f"row {n}: {e.message}")
            parsed.append(values)
        if errors:
            raise InvalidValue("; ".join(errors[:20]))
        for values in parsed:
            self.put(tenant, **values, by=by)
        return len(parsed)

    def lookup(self, tenant: str, host: str) -> ContactInfo | None:
        """The contact for the most specific name from ``host`` up to its registrable domain."""
        host = host.lower().strip(".")
        names = [host]
        domain = registrable_domain(host)
        parts = host.split(".")
        for i in range(1, len(parts)):
            name = ".".join(parts[i:])
            names.append(name)
            if name == domain:
                break
        with self.db.session() as s:
            found = {
                r.domain: r
                for r in s.scalars(
                    select(HostContact).where(
                        HostContact.tenant == tenant, HostContact.domain.in_(names)
                    )
                )
            }
        for name in names:
            if name in found:
                return _contact(found[name])
        return None

"""The URL block list for network operators: a plain list and an RPZ zone.

Every ``block`` notice that was sent and not yet closed is on the list. A block is for
one URL (scope ``url``) or for a whole host name (scope ``host``). Two formats:

* **plain** — one entry per line: the canonical URL for URL blocks, the bare host name
  for host blocks; ``#`` comment lines at the top say when it was made and how many.
* **rpz** — a DNS Response Policy Zone (BIND, Unbound, PowerDNS, Knot): each blocked
  host answers NXDOMAIN (``CNAME .``), itself and every name under it. DNS cannot block
  a single URL, so URL blocks are left out unless ``include_url_hosts`` is set — which
  blocks their whole host and may block far more than the reported page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from safehold.errors import InvalidValue, preview
from safehold.store.db import Database
from safehold.store.models import Notice, utcnow

FORMATS: tuple[str, ...] = ("plain", "rpz", "json")
_DNS_NAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{2,63}")
DEFAULT_ZONE = "rpz.safehold.invalid"


@dataclass(frozen=True)
class BlockEntry:
    url: str
    host: str
    scope: str
    notice_id: int
    case_id: int | None
    since: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "host": self.host,
            "scope": self.scope,
            "notice_id": self.notice_id,
            "case_id": self.case_id,
            "since": self.since.isoformat() if self.since else None,
        }


def entries(db: Database, tenant: str) -> list[BlockEntry]:
    """What is blocked now: sent ``block`` notices, oldest first, one per URL/host."""
    with db.session() as s:
        rows = s.scalars(
            select(Notice)
            .where(Notice.tenant == tenant, Notice.kind == "block", Notice.status == "sent")
            .order_by(Notice.sent_at, Notice.id)
        )
        seen: set[tuple[str, str]] = set()
        out: list[BlockEntry] = []
        for r in rows:
            key = (r.scope, r.host if r.scope == "host" else r.url)
            if key in seen:
                continue
            seen.add(key)
            out.append(BlockEntry(r.url, r.host, r.scope, int(r.id), r.case_id, r.sent_at))
        return out


def _header(kind: str, count: int, prefix: str) -> list[str]:
    return [
        f"{prefix} safehold URL block list ({kind})",
        f"{prefix} generated {utcnow().replace(microsecond=0).isoformat()}",
        f"{prefix} entries: {count}",
    ]


def export_plain(items: list[BlockEntry]) -> str:
    lines = _header("plain", len(items), "#")
    lines += [e.host if e.scope == "host" else e.url for e in items]
    return "\n".join(lines) + "\n"


def check_zone(zone: str) -> str:
    name = zone.strip().lower().rstrip(".")
    if not _DNS_NAME.fullmatch(name):
        raise InvalidValue(f"invalid RPZ zone name {preview(zone)}: e.g. rpz.example.org")
    return name


def export_rpz(
    items: list[BlockEntry],
    *,
    zone: str = DEFAULT_ZONE,
    include_url_hosts: bool = False,
    serial: int | None = None,
) -> str:
    """A zone file; load it as a response-policy zone on the resolver."""
    zone = check_zone(zone)
    hosts: dict[str, None] = {}
    skipped = 0
    for e in items:
        if e.scope != "host" and not include_url_hosts:
            skipped += 1
            continue
        name = e.host.lower().rstrip(".")
        if _DNS_NAME.fullmatch(name) and not name.replace(".", "").isdigit():
            hosts[name] = None
        else:
            skipped += 1  # an IP address or a name DNS cannot carry
    serial = serial if serial is not None else int(utcnow().timestamp())
    lines = _header("rpz", len(hosts), ";")
    if skipped:
        lines.append(f"; {skipped} URL entries are not in this zone (DNS blocks whole hosts)")
    lines += [
        "$TTL 300",
        f"@ IN SOA localhost. hostmaster.{zone}. ({serial} 3600 600 86400 300)",
        "@ IN NS localhost.",
    ]
    for name in hosts:
        lines.append(f"{name} CNAME .")
        lines.append(f"*.{name} CNAME .")
    return "\n".join(lines) + "\n"


def export(
    db: Database,
    tenant: str,
    fmt: str = "plain",
    *,
    zone: str = DEFAULT_ZONE,
    include_url_hosts: bool = False,
) -> str:
    if fmt not in FORMATS:
        raise InvalidValue(f"unknown block list format {preview(fmt)}: use plain, rpz or json")
    items = entries(db, tenant)
    if fmt == "rpz":
        return export_rpz(items, zone=zone, include_url_hosts=include_url_hosts)
    if fmt == "json":
        import json

        return json.dumps({"entries": [e.to_dict() for e in items]}, indent=1) + "\n"
    return export_plain(items)

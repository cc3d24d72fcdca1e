"""Hashes people make of their own images on their device, in a consent-based bank.

This is the StopNCII / Take It Down model: a person selects their own intimate image
or video on the portal's "hash it on your device" page; the browser computes MD5 and
PDQ (vPDQ for a video) and sends **only the hashes**. They go into the consent bank
(``SAFEHOLD_CONSENT_BANK``, default ``consent``: a block bank owned by the portal's
tenant, labelled ``ncii`` for adults and ``csam`` for people under 18, source
``public_report``). Platforms match uploads against it like any bank once it is
shared with their tenant (``safehold bank share consent --with TENANT``, or list the
tenants in ``SAFEHOLD_CONSENT_SHARE`` to share it when it is created). Index replicas
follow the change log, so a submission is matchable on every replica within a second.

The person gets a receipt (``H-...`` number and a secret). Withdrawing removes their
hashes from the bank — and so from every replica — unless someone else submitted the
same hash and has not withdrawn it.

PDQ hashes of quality below 50 (flat, featureless pictures) would match unrelated
pictures; they are not added (the MD5 of that file still is), and the answer says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from safehold.audit import AuditLog
from safehold.banks.entries import DEFAULT_TENANT, check_tenant, make_entry
from safehold.banks.repository import Banks
from safehold.errors import Conflict, InvalidSignal, InvalidValue, NotFound, preview
from safehold.intake import receipts
from safehold.intake.model import ReportStatus
from safehold.intake.receipts import Receipt
from safehold.signals.pdq import MIN_QUALITY, PdqSignal
from safehold.signals.vpdq import VpdqFrame, serialize
from safehold.store.db import Database
from safehold.store.models import Report, ReportHash, utcnow

log = logging.getLogger("safehold.intake")

KINDS: dict[str, tuple[str, str]] = {
    "adult": ("own_images_adult", "ncii"),
    "minor": ("own_images_minor", "csam"),
}
"""Whose image: ``adult`` (18 or over when it was taken) or ``minor`` → category, label."""
MAX_ITEMS = 20
MAX_FRAMES = 7200
SWEEP_BATCH = 1000
SOURCE = "public_report"


def consent_bank_name() -> str:
    return os.environ.get("SAFEHOLD_CONSENT_BANK", "").strip() or "consent"


@dataclass(frozen=True)
class HashReceipt:
    receipt: Receipt
    added: int
    """Hash values in the bank for this submission."""
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.receipt.to_dict(), "hashes": self.added, "notes": list(self.notes)}


def _hex(value: object, length: int, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a hexadecimal string")
    text = value.strip().lower()
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise InvalidValue(f"{what} must be {length} hexadecimal digits, not {preview(value)}")
    return text


def _quality(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidValue(f"{what} must be a whole number from 0 to 100")
    return value


def check_items(items: object) -> tuple[list[tuple[str, str, int | None]], list[str]]:
    """``(signal_type, value, quality)`` triples from what the page sent, and notes."""
    if not isinstance(items, list) or not items:
        raise InvalidValue("send the hashes of at least one file")
    if len(items) > MAX_ITEMS:
        raise InvalidValue(f"{len(items)} files were hashed: send at most {MAX_ITEMS} at a time")
    out: list[tuple[str, str, int | None]] = []
    notes: list[str] = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InvalidValue(f"file {n}: expected an object with md5 and pdq or vpdq")
        unknown = set(item) - {"md5", "pdq", "quality", "vpdq"}
        if unknown:
            raise InvalidValue(f"file {n}: unknown fields {', '.join(sorted(map(str, unknown)))}")
        out.append(("md5", _hex(item.get("md5"), 32, f"file {n}: md5"), None))
        if "pdq" in item and "vpdq" in item:
            raise InvalidValue(f"file {n}: send pdq for a picture or vpdq for a video, not both")
        if "pdq" in item:
            pdq = _hex(item["pdq"], 64, f"file {n}: pdq")
            quality = _quality(item.get("quality"), f"file {n}: quality")
            if quality < MIN_QUALITY:
                notes.append(
                    f"file {n}: the picture is too plain for a reliable PDQ hash "
                    f"(quality {quality}); only its exact MD5 was added"
                )
            else:
                out.append(("pdq", PdqSignal.normalize(pdq), quality))
        elif "vpdq" in item:
            frames = item["vpdq"]
            if not isinstance(frames, list) or not frames or len(frames) > MAX_FRAMES:
                raise InvalidValue(f"file {n}: vpdq must be a list of 1 to {MAX_FRAMES} frames")
            parsed = [_frame(n, i, f) for i, f in enumerate(frames)]
            usable = [f for f in parsed if f.quality >= MIN_QUALITY]
            if not usable:
                notes.append(
                    f"file {n}: every frame of the video is too plain for a reliable hash; "
                    "only its exact MD5 was added"
                )
            else:
                out.append(("vpdq", serialize(parsed), None))
        else:
            raise InvalidValue(f"file {n}: send pdq (a picture) or vpdq (a video) with the md5")
    return out, notes


def _frame(n: int, i: int, raw: object) -> VpdqFrame:
    if not isinstance(raw, dict):
        raise InvalidValue(f"file {n}: vpdq frame {i} must be an object")
    ts = raw.get("timestamp")
    frame = raw.get("frame", i)
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts < 1e7:
        raise InvalidValue(f"file {n}: vpdq frame {i} needs a timestamp in seconds")
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise InvalidValue(f"file {n}: vpdq frame {i} needs a frame number of 0 or more")
    try:
        pdq = PdqSignal.normalize(_hex(raw.get("pdq"), 64, f"file {n}: vpdq frame {i} pdq"))
    except InvalidSignal as e:
        raise InvalidValue(e.message) from None
    return VpdqFrame(frame, float(ts), pdq, _quality(raw.get("quality"), f"frame {i} quality"))


class ConsentHashes:
    """Submit and withdraw on-device hashes."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        *,
        banks: Banks | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.banks = banks or Banks(db)

    def bank(self, tenant: str) -> str:
        """The consent bank's name, created (and shared) on first use."""
        name = consent_bank_name()
        try:
            self.banks.get(name, tenant=tenant)
        except NotFound:
            with contextlib.suppress(Conflict):  # created at the same moment elsewhere
                self.banks.create(
                    name,
                    description=(
                        "Hashes people made of their own images on their device "
                        "(consent-based; removed when they withdraw)"
                    ),
                    tenant=tenant,
                )
            for other in os.environ.get("SAFEHOLD_CONSENT_SHARE", "").split(","):
                if other.strip() and other.strip() != tenant:
                    self.banks.share(name, other.strip(), tenant=tenant, by="system")
        return name

    def submit(
        self,
        items: object,
        *,
        kind: str,
        tenant: str = DEFAULT_TENANT,
        language: str = "en",
    ) -> HashReceipt:
        """Put one person's hashes into the consent bank; returns the receipt."""
        check_tenant(tenant)
        if kind not in KINDS:
            raise InvalidValue(f"kind must be one of {', '.join(KINDS)}, not {preview(kind)}")
        category, label = KINDS[kind]
        values, notes = check_items(items)
        unique = list(dict.fromkeys((st, v) for st, v, _q in values))
        quality = {(st, v): q for st, v, q in values}
        bank = self.bank(tenant)
        secret = receipts.new_secret()
        number = receipts.new_number("hashes")
        entries = [make_entry(st, v, [label], source=SOURCE) for st, v in unique]
        with self.db.session() as s:
            row = Report(
                tenant=tenant,
                number=number,
                secret_hash=receipts.hash_secret(secret),
                kind="hashes",
                category=category,
                status="received",
                source=SOURCE,
                language=language if language.isascii() and len(language) <= 16 else "en",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            s.add(row)
            s.flush()
            for e in entries:
                s.add(
                    ReportHash(
                        report_id=row.id,
                        signal_type=e.signal_type,
                        value=e.value,
                        digest=e.digest,
                        quality=quality.get((e.signal_type, e.value)),
                        active=True,
                    )
                )
            report_id = int(row.id)
            self.audit.append(
                "public",
                "hashes_submitted",
                object_type="report",
                object_id=receipts.display_number(number),
                details={"bank": bank, "hashes": len(entries), "kind": kind},
                tenant=tenant,
                session=s,
            )
        try:
            self.banks.add(bank, entries, added_by="public", tenant=tenant)
        except Exception:
            with self.db.session() as s:  # nothing half-written: no receipt without hashes
                s.execute(
                    update(ReportHash).where(ReportHash.report_id == report_id).values(active=False)
                )
                s.execute(
                    update(Report)
                    .where(Report.id == report_id)
                    .values(status="withdrawn", withdrawn_at=utcnow())
                )
            raise
        log.info("on-device hashes added", extra={"bank": bank, "hashes": len(entries)})
        return HashReceipt(Receipt(number, secret, report_id, None, "hashes"), len(entries), notes)

    def withdraw(self, number: object, secret: object) -> ReportStatus:
        """Remove a submission's hashes from the consent bank (idempotent)."""
        from safehold.intake.reports import open_receipt, report_status

        with self.db.session() as s:
            row = open_receipt(s, number, secret, lock=True)
            if row.kind != "hashes":
                raise Conflict("this receipt is for a report, not for hashes")
            tenant, report_id = row.tenant, int(row.id)
            s.execute(update(ReportHash).where(ReportHash.report_id == row.id).values(active=False))
            if row.withdrawn_at is None:
                row.withdrawn_at = utcnow()
                row.status = "withdrawn"
                row.updated_at = utcnow()
                self.audit.append(
                    "public",
                    "hashes_withdrawn",
                    object_type="report",
                    object_id=receipts.display_number(row.number),
                    details={"bank": consent_bank_name()},
                    tenant=tenant,
                    session=s,
                )
        self.sweep(tenant, report_id=report_id)
        with self.db.session() as s:
            row2 = s.get(Report, report_id)
            assert row2 is not None
            return report_status(s, row2)

    def sweep(self, tenant: str, *, report_id: int | None = None) -> int:
        """Remove from the bank the values of withdrawn submissions (one report's, or
        all of the tenant's) that no active submission still holds, then forget those
        withdrawn rows; returns how many bank entries were removed."""
        name = consent_bank_name()
        with self.db.session() as s:
            q = select(ReportHash.id, ReportHash.signal_type, ReportHash.value, ReportHash.digest)
            q = q.where(ReportHash.active.is_(False))
            if report_id is not None:
                q = q.where(ReportHash.report_id == report_id)
            else:
                q = q.join(Report, Report.id == ReportHash.report_id).where(Report.tenant == tenant)
            rows = list(s.execute(q.limit(SWEEP_BATCH)))
            if not rows:
                return 0
            gone = {d: (st, v) for _id, st, v, d in rows}
            still = set(
                s.scalars(
                    select(ReportHash.digest).where(
                        ReportHash.digest.in_(list(gone)), ReportHash.active.is_(True)
                    )
                )
            )
        values = [gone[d] for d in gone if d not in still]
        removed: list[int] = []
        if values:
            try:
                removed = self.banks.remove(name, values=values, tenant=tenant)
            except NotFound:  # the bank was deleted: nothing left to remove
                removed = []
        with self.db.session() as s:  # done: the withdrawn rows are not needed any more
            s.execute(delete(ReportHash).where(ReportHash.id.in_([r[0] for r in rows])))
        return len(removed)

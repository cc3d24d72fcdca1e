"""Webhooks: signed, timestamped messages to a service's own endpoint, retried with
backoff, dead-lettered after the last attempt and replayable.

A message is a JSON object ``{"id", "type", "created_at", "data"}`` sent by ``POST``
with the headers::

    Content-Type: application/json
    Safehold-Delivery: <delivery id>
    Safehold-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

Receivers check the signature with :func:`verify_signature` (or the same five lines in
any language) and refuse old timestamps (replays). The secret is read, at delivery, from
the environment variable the rule names (``secret_env``); it is never stored.

Deliveries run in the job worker (job ``deliver_webhook``), never on the request path:
a 2xx answer is delivered; anything else (an error status, a redirect, a timeout, a
refused connection) is retried after 10 s, 30 s, 2 min, 10 min, 1 h and 6 h (± 20 %
jitter; ``SAFEHOLD_WEBHOOK_RETRIES``), then the delivery is ``dead`` until replayed.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from safehold import __version__
from safehold.errors import Conflict, InvalidValue, NotFound
from safehold.jobs import JobContext, job
from safehold.store.db import Database
from safehold.store.models import WebhookDelivery

if TYPE_CHECKING:
    from safehold.audit import AuditLog
    from safehold.jobs import Jobs

log = logging.getLogger("safehold.webhooks")

DEFAULT_DELAYS = (10.0, 30.0, 120.0, 600.0, 3600.0, 21600.0)
"""Seconds before each retry (after the first attempt); then the delivery is dead."""
STATUSES = ("pending", "sending", "retrying", "delivered", "dead")
EVENT_TYPES = ("event.actioned", "case.decided")
SIGNATURE_HEADER = "Safehold-Signature"
DELIVERY_HEADER = "Safehold-Delivery"
SENDING_STALE = 300.0
"""A delivery still ``sending`` this many seconds after its claim was lost (worker died)."""
MAX_ERROR = 500

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- signatures


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> str:
    """The ``Safehold-Signature`` header value for ``body`` sent at ``timestamp``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` (``Safehold-Signature``) signs ``body`` with ``secret`` and
    its timestamp is within ``tolerance`` seconds of now. For receivers."""
    if not header:
        return False
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --------------------------------------------------------------------------- retry schedule


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise InvalidValue(f"not a duration: {text!r} (use e.g. 10s, 2m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def retry_delays(raw: str | None = None) -> tuple[float, ...]:
    """The retry schedule: ``SAFEHOLD_WEBHOOK_RETRIES`` is a number of retries (the
    default schedule, cut or extended with 6 h steps) or a comma-separated list of delays
    (``10s,1m,1h``)."""
    raw = os.environ.get("SAFEHOLD_WEBHOOK_RETRIES") if raw is None else raw
    if raw is None or not raw.strip():
        return DEFAULT_DELAYS
    raw = raw.strip()
    if raw.isdigit():
        n = int(raw)
        if n > 100:
            raise InvalidValue("SAFEHOLD_WEBHOOK_RETRIES: at most 100 retries")
        extra = max(0, n - len(DEFAULT_DELAYS))
        return (DEFAULT_DELAYS + (DEFAULT_DELAYS[-1],) * extra)[:n]
    delays = tuple(parse_duration(p) for p in raw.split(",") if p.strip())
    if len(delays) > 100:
        raise InvalidValue("SAFEHOLD_WEBHOOK_RETRIES: at most 100 retries")
    return delays


def check_url(url: str) -> str:
    """Only ``http`` and ``https`` URLs with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"a webhook URL must be http(s)://HOST/...; got {url[:200]!r}")
    return url


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    tenant: str
    rule: str | None
    url: str
    secret_ref: str | None
    event_id: int | None
    type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: str | None = None

    def to_dict(self, *, payload: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "tenant": self.tenant,
            "rule": self.rule,
            "url": self.url,
            "secret_env": self.secret_ref,
            "event_id": self.event_id,
            "type": self.type,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": _iso(self.created_at),
            "delivered_at": _iso(self.delivered_at),
        }
        if payload and self.payload is not None:
            out["payload"] = json.loads(self.payload)
        return out


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _type_of(payload: str) -> str:
    try:
        return str(json.loads(payload).get("type", ""))
    except (ValueError, AttributeError):
        return ""


def _info(row: WebhookDelivery, *, payload: bool = False) -> DeliveryInfo:
    return DeliveryInfo(
        id=int(row.id),
        tenant=row.tenant,
        rule=row.rule,
        url=row.url,
        secret_ref=row.secret_ref,
        event_id=row.event_id,
        type=_type_of(row.payload),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        payload=row.payload if payload else None,
    )


def message(type_: str, data: dict[str, Any], *, at: datetime | None = None) -> str:
    """The JSON body of a webhook message."""
    if type_ not in EVENT_TYPES:
        raise InvalidValue(f"unknown webhook type {type_!r}")
    body = {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": type_,
        "created_at": (at or utcnow()).isoformat(),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: int
    status: str
    """delivered, retrying, dead or skipped (not due, already delivered, being sent)."""
    http_status: int | None = None
    error: str | None = None
    retry_in: float | None = None


class Webhooks:
    """Create, deliver, list and replay webhook deliveries."""

    def __init__(
        self,
        db: Database,
        jobs: Jobs | None = None,
        audit: AuditLog | None = None,
        *,
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.audit = audit
        self.delays = tuple(delays) if delays is not None else retry_delays()
        env_timeout = os.environ.get("SAFEHOLD_WEBHOOK_TIMEOUT")
        self.timeout = timeout or (float(env_timeout) if env_timeout else 10.0)
        self.transport = transport

    # -- create

    def create(
        self,
        *,
        url: str,
        type_: str,
        data: dict[str, Any],
        tenant: str = "default",
        rule: str | None = None,
        secret_env: str | None = None,
        event_id: int | None = None,
        session: Session | None = None,
        enqueue: bool = True,
    ) -> int:
        """Store a delivery (in ``session``'s transaction when given) and queue it.

        With a ``session`` the caller queues it after commit (:meth:`enqueue`)."""
        check_url(url)
        payload = message(type_, data)
        row = WebhookDelivery(
            tenant=tenant,
            rule=rule,
            url=url,
            secret_ref=secret_env,
            event_id=event_id,
            payload=payload,
            status="pending",
            attempts=0,
            created_at=utcnow(),
        )
        if session is not None:
            session.add(row)
            session.flush()
            return int(row.id)
        with self.db.session() as s:
            s.add(row)
            s.flush()
            delivery_id = int(row.id)
        if enqueue:
            self.enqueue(delivery_id)
        return delivery_id

    def enqueue(self, delivery_id: int, delay: float = 0.0) -> None:
        if self.jobs is None:
            return
        try:
            self.jobs.enqueue("deliver_webhook", int(delivery_id), delay=delay)
        except Exception:  # the sweep re-queues it within a minute or two
            log.exception("could not queue webhook delivery %s", delivery_id)

    # -- deliver

    def deliver(self, delivery_id: int) -> AttemptResult:
        """One attempt at delivering ``delivery_id`` (when it is due)."""
        now = utcnow()
        with self.db.session() as s:
            claimed = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == int(delivery_id),
                    WebhookDelivery.status.in_(("pending", "retrying")),
                    or_(
                        WebhookDelivery.next_attempt_at.is_(None),
                        WebhookDelivery.next_attempt_at <= now + timedelta(seconds=1),
                    ),
                )
                .values(status="sending", next_attempt_at=now + timedelta(seconds=SENDING_STALE))
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return AttemptResult(int(delivery_id), "skipped")
            row = s.get(WebhookDelivery, int(delivery_id))
            assert row is not None
            url, payload, secret_ref, attempts = row.url, row.payload, row.secret_ref, row.attempts
        http_status: int | None = None
        error: str | None = None
        try:
            http_status, error = self._post(int(delivery_id), url, payload, secret_ref)
        except Exception as e:  # never leave the row in "sending"
            log.exception("webhook delivery %s failed", delivery_id)
            error = f"{type(e).__name__}: {e}"
        return self._record(int(delivery_id), attempts + 1, http_status, error)

    def _post(
        self, delivery_id: int, url: str, payload: str, secret_ref: str | None
    ) -> tuple[int | None, str | None]:
        try:
            check_url(url)
        except InvalidValue as e:
            return None, e.message
        body = payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"safehold/{__version__} webhooks",
            DELIVERY_HEADER: str(delivery_id),
        }
        if secret_ref:
            secret = os.environ.get(secret_ref)
            if not secret:
                return None, f"the signing secret's environment variable {secret_ref} is not set"
            headers[SIGNATURE_HEADER] = sign(secret, body)
        timeout = httpx.Timeout(self.timeout, connect=min(5.0, self.timeout))
        try:
            with (
                httpx.Client(
                    timeout=timeout,
                    follow_redirects=False,
                    transport=self.transport,
                    trust_env=False,
                ) as client,
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
        except httpx.TimeoutException as e:
            return None, f"timeout: {type(e).__name__}"
        except httpx.HTTPError as e:
            return None, f"{type(e).__name__}: {e}"[:MAX_ERROR]
        if 200 <= status < 300:
            return status, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed"
        return status, f"HTTP {status}"

    def _record(
        self, delivery_id: int, attempts: int, http_status: int | None, error: str | None
    ) -> AttemptResult:
        now = utcnow()
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": http_status,
            "last_error": error[:MAX_ERROR] if error else None,
        }
        retry_in: float | None = None
        if error is None:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
            outcome = "delivered"
        elif attempts > len(self.delays):
            values.update(status="dead", next_attempt_at=None)
            outcome = "dead"
        else:
            retry_in = self.delays[attempts - 1] * random.uniform(0.8, 1.2)
            values.update(status="retrying", next_attempt_at=now + timedelta(seconds=retry_in))
            outcome = "retrying"
        with self.db.session() as s:
            s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "sending")
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if outcome == "retrying" and retry_in is not None:
            self.enqueue(delivery_id, delay=retry_in)
        elif outcome == "dead":
            log.warning("webhook delivery %s is dead after %s attempts", delivery_id, attempts)
        return AttemptResult(delivery_id, outcome, http_status, error, retry_in)

    def sweep(self, *, limit: int = 500) -> builtins.list[int]:
        """Queue again deliveries whose job was lost (a queue that lost its schedule, a
        worker that died mid-send): due for over a minute, or stuck in ``sending``."""
        now = utcnow()
        late = now - timedelta(seconds=60)
        with self.db.session() as s:
            stuck = s.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == "sending",
                    WebhookDelivery.next_attempt_at < now,
                )
                .limit(limit)
            ).all()
            if stuck:
                s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(stuck), WebhookDelivery.status == "sending")
                    .values(status="retrying", next_attempt_at=now)
                    .execution_options(synchronize_session=False)
                )
            due = s.scalars(
                select(WebhookDelivery.id)
                .where(
                    or_(
                        and_(
                            WebhookDelivery.status == "pending",
                            WebhookDelivery.created_at < late,
                            or_(
                                WebhookDelivery.next_attempt_at.is_(None),
                                WebhookDelivery.next_attempt_at < late,
                            ),
                        ),
                        and_(
                            WebhookDelivery.status == "retrying",
                            WebhookDelivery.next_attempt_at < late,
                        ),
                    )
                )
                .order_by(WebhookDelivery.id)
                .limit(limit)
            ).all()
        ids = sorted({int(i) for i in (*stuck, *due)})
        for delivery_id in ids:
            self.enqueue(delivery_id)
        return ids

    # -- list, replay

    def get(self, delivery_id: int, *, tenant: str | None = None) -> DeliveryInfo:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, int(delivery_id))
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFound(f"no webhook delivery {delivery_id}")
            return _info(row, payload=True)

    def list(
        self,
        *,
        tenant: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[DeliveryInfo]:
        """Deliveries, newest first."""
        if status is not None and status not in STATUSES:
            raise InvalidValue(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        if not 1 <= limit <= 1000:
            raise InvalidValue("limit must be between 1 and 1000")
        stmt = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if tenant is not None:
            stmt = stmt.where(WebhookDelivery.tenant == tenant)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        if before_id is not None:
            stmt = stmt.where(WebhookDelivery.id < before_id)
        with self.db.session() as s:
            return [_info(r) for r in s.scalars(stmt)]

    def counts(self, *, tenant: str | None = None) -> builtins.dict[str, int]:
        from sqlalchemy import func

        stmt = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        if tenant is not None:
            stmt = stmt.where(WebhookDelivery.tenant == tenant)
        with self.db.session() as s:
            found = {str(k): int(v) for k, v in s.execute(stmt).all()}
        return {st: found.get(st, 0) for st in STATUSES}

    def replay(
        self, delivery_id: int, *, tenant: str | None = None, by: str = "cli"
    ) -> DeliveryInfo:
        """Send a delivery again from the start of the retry schedule (dead, delivered
        or waiting; not while it is being sent). Audited as ``webhook_replay``."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, int(delivery_id), with_for_update=True)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFound(f"no webhook delivery {delivery_id}")
            if row.status == "sending":
                raise Conflict(f"webhook delivery {delivery_id} is being sent right now")
            previous = row.status
            row.status = "pending"
            row.attempts = 0
            row.next_attempt_at = None
            if self.audit is not None:
                self.audit.append(
                    by,
                    "webhook_replay",
                    object_type="webhook",
                    object_id=row.id,
                    details={"url": row.url, "previous_status": previous},
                    tenant=row.tenant,
                    session=s,
                )
            s.flush()
            info = _info(row)
        self.enqueue(info.id)
        return info

    def replay_dead(self, *, tenant: str | None = None, by: str = "cli") -> builtins.list[int]:
        """Replay every dead delivery (of ``tenant``); their ids."""
        stmt = select(WebhookDelivery.id).where(WebhookDelivery.status == "dead")
        if tenant is not None:
            stmt = stmt.where(WebhookDelivery.tenant == tenant)
        with self.db.session() as s:
            ids = [int(i) for i in s.scalars(stmt.order_by(WebhookDelivery.id))]
        done = []
        for delivery_id in ids:
            try:
                self.replay(delivery_id, tenant=tenant, by=by)
                done.append(delivery_id)
            except (NotFound, Conflict):
                continue
        return done


def webhooks_for(ctx: JobContext) -> Webhooks:
    return Webhooks(ctx.db, ctx.jobs, ctx.audit)


@job("deliver_webhook", retries=2, retry_delay=30.0)
def deliver_webhook(ctx: JobContext, delivery_id: int) -> None:
    """Job: one delivery attempt (it schedules its own retries)."""
    webhooks_for(ctx).deliver(int(delivery_id))


@job("sweep_webhooks", retries=0, periodic=True)
def sweep_webhooks(ctx: JobContext) -> None:
    """Job, once a minute: re-queue deliveries whose job was lost."""
    ids = webhooks_for(ctx).sweep()
    if ids:
        log.info("re-queued %s webhook deliveries", len(ids))

"""Sending e-mail: takedown notices to hosts, and "you have a message" to reporters.

Configured by ``SAFEHOLD_SMTP_URL`` — ``smtp://HOST:PORT`` (plain, for a local relay),
``smtp+starttls://USER:PASSWORD@HOST:587`` or ``smtps://USER:PASSWORD@HOST:465`` — and
``SAFEHOLD_MAIL_FROM`` (the sender address). Without ``SAFEHOLD_SMTP_URL`` nothing is
ever sent: notices are marked sent by hand and reporters read messages with their
receipt. The password lives only in the environment, never in the database.

Mail is sent by jobs (:mod:`safehold.intake.tasks`), retried with backoff, never on
a request.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from safehold.errors import InvalidValue
from safehold.intake.fields import clean_email

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: str
    """``smtp`` (plain), ``smtp+starttls`` or ``smtps``."""
    username: str | None
    password: str | None
    sender: str
    timeout: float = 30.0


def mail_configured() -> bool:
    return bool(os.environ.get("SAFEHOLD_SMTP_URL", "").strip())


def settings_from_env() -> MailSettings | None:
    raw = os.environ.get("SAFEHOLD_SMTP_URL", "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidValue(
            "SAFEHOLD_SMTP_URL must look like smtp://HOST:PORT, smtp+starttls://USER:PASS@HOST:587 "
            "or smtps://USER:PASS@HOST:465"
        )
    sender = os.environ.get("SAFEHOLD_MAIL_FROM", "").strip() or f"safehold@{parts.hostname}"
    return MailSettings(
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        security=parts.scheme,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=sender,
    )


def _header(text: str) -> str:
    """A header value on one line (no header injection through a subject)."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())[:900]


def send_mail(
    to: str,
    subject: str,
    body: str,
    *,
    settings: MailSettings | None = None,
    reply_to: str | None = None,
) -> str:
    """Send one plain-text message; returns its Message-ID. Raises ``OSError`` or
    ``smtplib.SMTPException`` when the server refuses (the job retries)."""
    cfg = settings or settings_from_env()
    if cfg is None:
        raise InvalidValue("e-mail is not configured: set SAFEHOLD_SMTP_URL")
    address = clean_email(to)
    if not address:
        raise InvalidValue("no e-mail address to send to")
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = address
    msg["Subject"] = _header(subject)
    if reply_to:
        msg["Reply-To"] = clean_email(reply_to)
    msg["Message-ID"] = make_msgid(domain=cfg.sender.rpartition("@")[2] or None)
    msg.set_content(body)
    if cfg.security == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    with client:
        if cfg.security == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if cfg.username:
            client.login(cfg.username, cfg.password or "")
        client.send_message(msg)
    return str(msg["Message-ID"])

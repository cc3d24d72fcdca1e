"""Receipts: a report number and a secret, shown to the reporter once.

The number (``R-7KQ2-M9XD`` for a report, ``H-...`` for hashes made on a device) is
printed on every page about the report; the secret (``4F7K-9QXM-2B8D-TT0W``, 80 random
bits) proves that whoever holds it made the report. Only an argon2id hash of the
secret is stored, so a copy of the database does not let anyone read a report's
status, add to it or withdraw it.

Both use Crockford's base 32 (no I, L, O or U): what a person types back is read
forgivingly — lower case, spaces and dashes, ``O`` for ``0`` and ``I``/``L`` for ``1``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NUMBER_CHARS = 8
SECRET_CHARS = 16
KIND_PREFIX = {"report": "R", "hashes": "H"}
_FORGIVE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("safehold-no-such-receipt")


@dataclass(frozen=True)
class Receipt:
    """What the reporter is shown once: keep it to check the status or withdraw."""

    number: str
    secret: str
    report_id: int
    case_id: int | None
    kind: str = "report"

    @property
    def display_number(self) -> str:
        return display_number(self.number)

    def to_dict(self) -> dict[str, object]:
        return {
            "number": self.display_number,
            "secret": self.secret,
            "kind": self.kind,
        }


def _random(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def new_number(kind: str) -> str:
    """A fresh report number in its stored form (``R7KQ2M9XD``)."""
    return KIND_PREFIX[kind] + _random(NUMBER_CHARS)


def new_secret() -> str:
    raw = _random(SECRET_CHARS)
    return "-".join(raw[i : i + 4] for i in range(0, SECRET_CHARS, 4))


def display_number(number: str) -> str:
    """``R7KQ2M9XD`` → ``R-7KQ2-M9XD``."""
    return f"{number[:1]}-{number[1:5]}-{number[5:]}" if len(number) == NUMBER_CHARS + 1 else number


def _squash(text: object, limit: int) -> str:
    if not isinstance(text, str) or len(text) > limit:
        return ""
    return "".join(c for c in text.upper() if c not in " -_.\t\r\n").translate(_FORGIVE)


def normalize_number(text: object) -> str | None:
    """The stored form of a typed report number, or ``None`` when it cannot be one."""
    raw = _squash(text, 64)
    if (
        len(raw) == NUMBER_CHARS + 1
        and raw[0] in KIND_PREFIX.values()
        and all(c in ALPHABET for c in raw[1:])
    ):
        return raw
    return None


def normalize_secret(text: object) -> str | None:
    raw = _squash(text, 128)
    if len(raw) != SECRET_CHARS or any(c not in ALPHABET for c in raw):
        return None
    return "-".join(raw[i : i + 4] for i in range(0, SECRET_CHARS, 4))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def check_secret(stored_hash: str | None, typed: object) -> bool:
    """Whether ``typed`` is the secret of ``stored_hash`` (one argon2 verification even
    when there is no such report, so timing does not tell whether a number exists)."""
    secret = normalize_secret(typed)
    try:
        return _hasher.verify(stored_hash or _DUMMY, secret or "-") and bool(stored_hash and secret)
    except (VerificationError, InvalidHashError):
        return False

"""Short-lived signed URLs for the unblurred rendition of one case item.

A reveal (a POST with the CSRF token, audited as ``view_media``) returns a URL that
names the item, the frame (``-1`` for a still image), the user and an expiry time,
signed with HMAC-SHA256 under the session's CSRF secret. The media route accepts it
only from the same session and only until it expires (``SAFEHOLD_REVEAL_SECONDS``,
default 15): a copied URL is useless in another browser and soon useless in this one.
The secret lives in the database with the session, so any replica can check it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from urllib.parse import urlencode

DEFAULT_SECONDS = 15


def reveal_seconds() -> int:
    raw = os.environ.get("SAFEHOLD_REVEAL_SECONDS")
    try:
        value = int(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        value = DEFAULT_SECONDS
    return max(1, min(value, 300))


def _signature(secret: str, user_id: int, item_id: int, frame: int, expires: int) -> str:
    message = f"reveal:{user_id}:{item_id}:{frame}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(
    secret: str,
    *,
    case_id: int,
    item_id: int,
    user_id: int,
    expires: int,
    frame: int = -1,
) -> str:
    sig = _signature(secret, user_id, item_id, frame, expires)
    query = urlencode({"exp": expires, "frame": frame, "sig": sig})
    return f"/ui/cases/{case_id}/items/{item_id}/revealed?{query}"


def valid(
    secret: str,
    *,
    item_id: int,
    user_id: int,
    frame: int,
    expires: int,
    signature: str,
    now: float | None = None,
) -> bool:
    if expires < (now if now is not None else time.time()):
        return False
    expected = _signature(secret, user_id, item_id, frame, expires)
    return hmac.compare_digest(expected.encode(), signature.encode())

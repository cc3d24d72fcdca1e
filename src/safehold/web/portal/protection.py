"""Abuse protection that identifies nobody: CSRF tokens, rate limits, proof-of-work.

* **CSRF** — double submit: a random token in the ``safehold_portal_csrf`` cookie
  (``HttpOnly``, ``SameSite=Strict``, ``Path=/report``, ``Secure`` over https; the only
  cookie the portal sets) that every form echoes in the hidden field ``csrf`` and the
  hashing page in the ``X-CSRF-Token`` header.
* **Rate limits** — token buckets kept in this process's memory only, one per client
  address and kind of request. The bucket's key is an HMAC of the address under a
  random key made when the process starts, so the address itself is never kept, and
  the key is never stored or logged (a restart forgets every bucket). IPv6 addresses
  count per /64 network. ``SAFEHOLD_PORTAL_RATE`` sets the limits, for example
  ``report=10/10m,hash=10/10m,status=30/10m,secret=5/15m`` (``count/period`` with the
  period in ``s``, ``m`` or ``h``; ``0`` turns one off). ``secret`` counts wrong
  secrets typed for one report number, from any address.
* **Proof-of-work** (off unless ``SAFEHOLD_PORTAL_POW_BITS=N``): the page carries a
  challenge signed with HMAC that expires; the browser (``portal.js``) looks for a
  nonce so that SHA-256 of ``challenge:nonce`` starts with ``N`` zero bits, and the
  server checks it and refuses a challenge used before. With several replicas, set
  ``SAFEHOLD_PORTAL_POW_KEY`` to the same secret on all of them (otherwise each
  process signs with its own random key and only accepts its own challenges).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from safehold.errors import Forbidden, InvalidValue, RateLimited

log = logging.getLogger("safehold.portal")

CSRF_COOKIE = "safehold_portal_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/report"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")

DEFAULT_RATES: dict[str, tuple[int, float]] = {
    "report": (10, 600.0),
    "hash": (10, 600.0),
    "status": (30, 600.0),
    "secret": (5, 900.0),
}
"""``kind: (count, seconds)``: at most ``count`` requests per ``seconds`` (a bucket that
refills evenly)."""
POW_TTL = 1800.0
"""Seconds a proof-of-work challenge stays valid (the time to fill in the form)."""
MAX_POW_BITS = 32


class CsrfRefused(Forbidden):
    code = "csrf_refused"


class PowRefused(Forbidden):
    code = "pow_refused"


# --------------------------------------------------------------------------- CSRF


def csrf_token(request: Request) -> str:
    """The token of this browser (the cookie's), or a new one to set."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if _TOKEN.fullmatch(current) else secrets.token_urlsafe(24)


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )


def check_csrf(request: Request, submitted: object) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = submitted if isinstance(submitted, str) else ""
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise CsrfRefused("the form expired or was not sent from this site")


# --------------------------------------------------------------------------- rate limits


def parse_rates(raw: str | None) -> dict[str, tuple[int, float]]:
    """``SAFEHOLD_PORTAL_RATE`` → ``{kind: (count, seconds)}`` (defaults for the rest)."""
    rates = dict(DEFAULT_RATES)
    if not raw or not raw.strip():
        return rates
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*)?", value)
        if not sep or name not in DEFAULT_RATES or m is None:
            raise InvalidValue(
                f"SAFEHOLD_PORTAL_RATE: cannot read {part.strip()!r}; write kind=count/period "
                f"with a kind of {', '.join(DEFAULT_RATES)} (e.g. report=10/10m,status=30/10m)"
            )
        count = int(m.group(1))
        seconds = float(m.group(2) or DEFAULT_RATES[name][1])
        seconds *= {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(3) or ""]
        if seconds <= 0:
            raise InvalidValue(f"SAFEHOLD_PORTAL_RATE: the period of {name} must be positive")
        rates[name] = (count, seconds)
    return rates


class Buckets:
    """Token buckets in memory (bounded: the least recently used are forgotten)."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_keys

    def _level(self, key: str, count: int, seconds: float, now: float) -> float:
        tokens, last = self._buckets.pop(key, (float(count), now))
        return min(float(count), tokens + (now - last) * count / seconds)

    def take(self, key: str, count: int, seconds: float) -> float:
        """Take a token: 0 when allowed, else the seconds until one is back."""
        if count <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens = self._level(key, count, seconds, now)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) * seconds / count
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait

    def wait(self, key: str, count: int, seconds: float) -> float:
        """Seconds until a token is available (0: now), without taking one."""
        if count <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens = self._level(key, count, seconds, now)
            self._buckets[key] = (tokens, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) * seconds / count


def address_of(request: Request) -> str:
    """The client address as the rate limit counts it: IPv6 per /64 network."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def count_of(rates: dict[str, tuple[int, float]], *kinds: str) -> int:
    return sum(rates[k][0] for k in kinds)


class Limits:
    """The portal's rate limits, keyed by HMACs under a per-process random key."""

    def __init__(self, rates: dict[str, tuple[int, float]] | None = None) -> None:
        self.rates = (
            rates if rates is not None else parse_rates(os.environ.get("SAFEHOLD_PORTAL_RATE"))
        )
        self._key = secrets.token_bytes(32)
        self.buckets = Buckets()
        self._warned = False

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def _check_proxy(self, request: Request) -> None:
        """Say once when a proxy hides the client: every request then comes from the
        proxy's address and the limits apply to all clients together."""
        if self._warned or count_of(self.rates, "report", "status", "hash") == 0:
            return
        relayed = "forwarded" in request.headers or "x-forwarded-for" in request.headers
        host = request.client.host if request.client else ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if relayed and loopback:
            self._warned = True
            log.warning(
                "portal requests come through a proxy that does not pass the client address "
                "on: the per-address limits of SAFEHOLD_PORTAL_RATE apply to all clients "
                "together (see docs/portal.md, 'Behind a reverse proxy')"
            )

    def hit(self, request: Request, kind: str) -> None:
        """Count one request of ``kind`` from this client; raise when over the limit."""
        self._check_proxy(request)
        count, seconds = self.rates[kind]
        wait = self.buckets.take(self._digest(kind, address_of(request)), count, seconds)
        if wait > 0:
            raise RateLimited("too many requests from this address", retry_after=wait)

    def check_secret(self, number: str) -> None:
        """Refuse a receipt whose number had too many wrong secrets lately."""
        count, seconds = self.rates["secret"]
        wait = self.buckets.wait(self._digest("secret", number), count, seconds)
        if wait > 0:
            raise RateLimited("too many wrong secrets for this report number", retry_after=wait)

    def wrong_secret(self, number: str) -> None:
        count, seconds = self.rates["secret"]
        self.buckets.take(self._digest("secret", number), count, seconds)


# --------------------------------------------------------------------------- proof-of-work


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def pow_bits_from_env() -> int:
    raw = os.environ.get("SAFEHOLD_PORTAL_POW_BITS", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > MAX_POW_BITS:
        raise InvalidValue(
            f"SAFEHOLD_PORTAL_POW_BITS must be a whole number from 0 to {MAX_POW_BITS}, not {raw!r}"
        )
    return int(raw)


@dataclass(frozen=True)
class Challenge:
    text: str
    bits: int


class ProofOfWork:
    """Signed, expiring, single-use challenges (``bits`` = 0: off)."""

    def __init__(
        self, bits: int | None = None, key: bytes | None = None, ttl: float = POW_TTL
    ) -> None:
        self.bits = pow_bits_from_env() if bits is None else bits
        shared = os.environ.get("SAFEHOLD_PORTAL_POW_KEY", "").encode()
        self._key = key or (hashlib.sha256(shared).digest() if shared else secrets.token_bytes(32))
        self.ttl = ttl
        self._used: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._max_used = 500_000

    @property
    def enabled(self) -> bool:
        return self.bits > 0

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> Challenge | None:
        if not self.enabled:
            return None
        body = f"{self.bits}.{math.ceil(time.time() + self.ttl)}.{secrets.token_hex(8)}"
        return Challenge(f"{body}.{self._sign(body)}", self.bits)

    def verify(self, challenge: object, nonce: object) -> None:
        """Accept a solved challenge once; raise :class:`PowRefused` otherwise."""
        if not self.enabled:
            return
        if not isinstance(challenge, str) or not isinstance(nonce, str):
            raise PowRefused("the browser check is missing")
        if len(challenge) > 120 or not re.fullmatch(r"[0-9]{1,20}", nonce):
            raise PowRefused("the browser check is malformed")
        parts = challenge.split(".")
        if len(parts) != 4 or not all(parts):
            raise PowRefused("the browser check is malformed")
        bits_s, expires_s, _rand, sig = parts
        body = ".".join(parts[:3])
        if not hmac.compare_digest(sig, self._sign(body)):
            raise PowRefused("the browser check was not made by this site")
        if not bits_s.isdigit() or not expires_s.isdigit():
            raise PowRefused("the browser check is malformed")
        now = time.time()
        if int(expires_s) < now:
            raise PowRefused("the browser check expired")
        bits = int(bits_s)
        if bits < self.bits:
            raise PowRefused("the browser check is too easy")
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if leading_zero_bits(digest) < bits:
            raise PowRefused("the browser check was not solved")
        with self._lock:
            while self._used and next(iter(self._used.values())) < now:
                self._used.popitem(last=False)
            if challenge in self._used:
                raise PowRefused("the browser check was used before")
            self._used[challenge] = float(expires_s)
            while len(self._used) > self._max_used:
                self._used.popitem(last=False)

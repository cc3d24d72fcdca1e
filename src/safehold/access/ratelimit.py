"""Per-key rate limits: token buckets, in process or shared through Redis.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each
request takes one. When the bucket is empty the request is refused with the number of
seconds until a token is back (HTTP 429 with ``Retry-After``).

With ``SAFEHOLD_REDIS_URL`` set, buckets live in Redis (one atomic Lua script per
request, Redis' own clock), so every replica draws from the same bucket; otherwise
each process keeps its own. If Redis cannot be reached the request is let through
and a warning logged: a scanning service must not stop scanning because its rate
limiter is down.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

import structlog

log = structlog.get_logger("safehold.ratelimit")

DEFAULT_RATE = 100.0
"""Requests per second per key when the key sets none (``SAFEHOLD_RATE_LIMIT``)."""


class RateLimiter(Protocol):
    def hit(self, key: str, rate: float, burst: int) -> float:
        """Take one token; returns 0 when allowed, else seconds until one is available."""
        ...


def default_limits() -> tuple[float, int]:
    """(rate, burst) from ``SAFEHOLD_RATE_LIMIT`` / ``SAFEHOLD_RATE_BURST``."""
    rate = float(os.environ.get("SAFEHOLD_RATE_LIMIT") or DEFAULT_RATE)
    burst = int(float(os.environ.get("SAFEHOLD_RATE_BURST") or max(1.0, 2 * rate)))
    return rate, burst


class LocalRateLimiter:
    """Token buckets in this process (bounded: the least recently used are forgotten)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_keys

    def hit(self, key: str, rate: float, burst: int) -> float:
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait


_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * (burst / rate + 1)))
return tostring(wait)
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every replica."""

    def __init__(self, url: str, prefix: str = "safehold:rl:") -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_LUA)
        self._prefix = prefix
        self._warned = 0.0

    def hit(self, key: str, rate: float, burst: int) -> float:
        if rate <= 0:
            return 0.0
        try:
            return float(self._script(keys=[self._prefix + key], args=[rate, burst]))
        except Exception as e:  # Redis down: let the request through, say so (once a minute)
            now = time.monotonic()
            if now - self._warned > 60:
                self._warned = now
                log.warning("rate limiter cannot reach Redis; not limiting", error=str(e))
            return 0.0


def rate_limiter(url: str | None = None) -> RateLimiter:
    """Redis-backed when ``url`` or ``SAFEHOLD_REDIS_URL`` is set, in-process otherwise."""
    url = url or os.environ.get("SAFEHOLD_REDIS_URL")
    return RedisRateLimiter(url) if url else LocalRateLimiter()


def retry_after(seconds: float) -> int:
    """The ``Retry-After`` header value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))

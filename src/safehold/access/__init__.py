"""Who may do what: API keys with scopes and tenants, and per-key rate limits."""

from safehold.access.keys import SCOPES, ApiKeyInfo, ApiKeys, parse_scopes
from safehold.access.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter, rate_limiter

__all__ = [
    "SCOPES",
    "ApiKeyInfo",
    "ApiKeys",
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "parse_scopes",
    "rate_limiter",
]

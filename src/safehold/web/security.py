"""Authentication and authorisation for the API: bearer keys, scopes, rate limits.

Routes declare what they need with ``Depends(require("scope"))``; the dependency
returns the caller's :class:`~safehold.access.keys.ApiKeyInfo`. The OpenAPI document
lists the bearer scheme, so the docs page can authorise and clients can generate code.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from safehold.access.keys import ApiKeyInfo
from safehold.errors import Forbidden, RateLimited, Unauthorized
from safehold.web.service import Service

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer shk_...`")


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def require(scope: str) -> Callable[..., ApiKeyInfo]:
    """A dependency that admits keys holding ``scope`` (or ``admin``)."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> ApiKeyInfo:
        svc = service(request)
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized(
                "this route needs an API key: send 'Authorization: Bearer shk_...' "
                "(create one with `safehold key create`)"
            )

        def guard(key_id: str) -> None:
            # each uncached key costs an argon2 verification (a genuine key needs one per
            # process and minute): at most 20 at once per key id, then 2 a second
            wait = svc.limiter.hit("verify:" + key_id, 2.0, 20)
            if wait > 0:
                raise RateLimited(
                    "too many attempts to verify this key; retry later", retry_after=wait
                )

        key = svc.keys.authenticate(credentials.credentials, before_verify=guard)
        rate, burst = svc.default_rate
        if key.rate is not None:
            rate = key.rate
            burst = key.burst or max(1, int(2 * rate))
        elif key.burst is not None:
            burst = key.burst
        wait = svc.limiter.hit(key.key_id, rate, burst)
        if wait > 0:
            svc.metrics.rate_limited.inc()
            raise RateLimited(
                f"rate limit of {rate:g} requests/second (burst {burst}) reached for key "
                f"{key.key_id}; retry after the Retry-After seconds",
                retry_after=wait,
            )
        if not key.allows(scope):
            raise Forbidden(
                f"this key (scopes: {', '.join(key.scopes)}) lacks the scope {scope!r} this "
                "route needs; create a key with it"
            )
        request.state.key = key
        return key

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency

"""What one ``safehold serve`` process holds: database, index replica, keys, limits."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from safehold.access.keys import ApiKeys
from safehold.access.ratelimit import RateLimiter, default_limits, rate_limiter
from safehold.banks.replica import IndexReplica
from safehold.banks.repository import Banks
from safehold.errors import SafeholdError
from safehold.media import Limits
from safehold.store.db import Database
from safehold.web.metrics import Metrics


class NotReady(SafeholdError):
    code = "not_ready"
    status = 503


@dataclass
class Service:
    db: Database
    banks: Banks
    keys: ApiKeys
    replica: IndexReplica
    limiter: RateLimiter
    limits: Limits
    metrics: Metrics
    default_rate: tuple[float, int]
    tmpdir: str | None = None
    hashing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(_hash_slots())
    )

    @classmethod
    def open(cls, db: Database, *, redis_url: str | None = None) -> Service:
        keys = ApiKeys(db)
        replica = IndexReplica(db)
        replica.key_listeners.append(keys.forget)
        return cls(
            db=db,
            banks=Banks(db),
            keys=keys,
            replica=replica,
            limiter=rate_limiter(redis_url),
            limits=Limits.from_env(),
            metrics=Metrics(),
            default_rate=default_limits(),
            tmpdir=os.environ.get("SAFEHOLD_TMPDIR") or None,
        )

    def matcher_ready(self) -> None:
        if not self.replica.loaded:
            raise NotReady("the index is still loading; retry in a few seconds (see /readyz)")


def _hash_slots() -> int:
    """Uploads decoded at once (each may take hundreds of MB): one per core by default."""
    raw = os.environ.get("SAFEHOLD_HASH_CONCURRENCY")
    return max(1, int(raw)) if raw else max(1, os.cpu_count() or 1)

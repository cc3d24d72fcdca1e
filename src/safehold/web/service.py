"""What one ``safehold serve`` process holds: database, index replica, keys, limits."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from safehold.access.keys import ApiKeys
from safehold.access.ratelimit import RateLimiter, default_limits, rate_limiter
from safehold.access.sessions import Sessions
from safehold.access.users import Users
from safehold.actions.dispatch import Policy
from safehold.audit import AuditLog
from safehold.banks.replica import IndexReplica
from safehold.banks.repository import Banks
from safehold.cases.service import Cases
from safehold.cases.wellness import Wellness
from safehold.errors import SafeholdError
from safehold.jobs import Jobs
from safehold.media import Limits
from safehold.media_store import MediaStore, default_media_root
from safehold.rules.store import RuleSets
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
    audit: AuditLog
    users: Users
    sessions: Sessions
    rulesets: RuleSets
    jobs: Jobs
    media: MediaStore
    cases: Cases
    wellness: Wellness
    policy: Policy
    tmpdir: str | None = None
    hashing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(_hash_slots())
    )

    @classmethod
    def open(
        cls, db: Database, *, redis_url: str | None = None, queue_url: str | None = None
    ) -> Service:
        keys = ApiKeys(db)
        replica = IndexReplica(db)
        replica.key_listeners.append(keys.forget)
        audit = AuditLog(db)
        rulesets = RuleSets(db)
        jobs = Jobs.from_url(queue_url or os.environ.get("SAFEHOLD_QUEUE_URL"), db.url)
        media = MediaStore(db, os.environ.get("SAFEHOLD_MEDIA_DIR") or default_media_root(db))
        return cls(
            db=db,
            banks=Banks(db),
            keys=keys,
            replica=replica,
            limiter=rate_limiter(redis_url),
            limits=Limits.from_env(),
            metrics=Metrics(),
            default_rate=default_limits(),
            audit=audit,
            users=Users(db, audit),
            sessions=Sessions(db),
            rulesets=rulesets,
            jobs=jobs,
            media=media,
            cases=Cases(db, audit),
            wellness=Wellness(db),
            policy=Policy(db, rulesets=rulesets, jobs=jobs, media=media, audit=audit),
            tmpdir=os.environ.get("SAFEHOLD_TMPDIR") or None,
        )

    def start_background(self, *, worker: bool = True) -> None:
        """Start what runs beside the requests: the in-process job worker (unless the
        deployment runs ``safehold worker`` processes instead)."""

    def stop_background(self) -> None:
        """Stop the job worker, letting running jobs finish."""

    def matcher_ready(self) -> None:
        if not self.replica.loaded:
            raise NotReady("the index is still loading; retry in a few seconds (see /readyz)")


def _hash_slots() -> int:
    """Uploads decoded at once (each may take hundreds of MB): one per core by default."""
    raw = os.environ.get("SAFEHOLD_HASH_CONCURRENCY")
    return max(1, int(raw)) if raw else max(1, os.cpu_count() or 1)

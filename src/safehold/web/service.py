"""What one ``safehold serve`` process holds: database, index replica, keys, limits."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from safehold.access.keys import ApiKeys
from safehold.access.ratelimit import RateLimiter, default_limits, rate_limiter
from safehold.access.sessions import Sessions
from safehold.access.users import Users
from safehold.actions.dispatch import Policy
from safehold.actions.run import decided_listener
from safehold.actions.webhooks import retry_delays
from safehold.audit import AuditLog
from safehold.banks.replica import IndexReplica
from safehold.banks.repository import Banks
from safehold.cases.service import Cases
from safehold.cases.wellness import Wellness
from safehold.errors import SafeholdError
from safehold.hashing import ContentHashes
from safehold.intake import (
    Complaints,
    ConsentHashes,
    HostContacts,
    Notices,
    NoticeTemplates,
    Reports,
)
from safehold.jobs import JobContext, Jobs
from safehold.media import Limits
from safehold.media_store import MediaStore, default_media_root
from safehold.refer.referrals import Referrals
from safehold.refer.vault import EvidenceVault, vault_from_env
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
    reports: Reports
    consent: ConsentHashes
    complaints: Complaints
    notices: Notices
    templates: NoticeTemplates
    contacts: HostContacts
    tmpdir: str | None = None
    hashing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(_hash_slots())
    )
    vault: EvidenceVault | None = None

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
        cases = Cases(db, audit)
        banks = Banks(db)
        limits = Limits.from_env()

        def match(hashes: ContentHashes, tenant: str) -> list[dict[str, Any]]:
            """Bank matches of a reported file, when the index has loaded."""
            if not replica.loaded:
                return []
            return [
                m.to_dict() for m in replica.matcher.match_content(hashes, tenant=tenant).matches
            ]

        templates = NoticeTemplates(db, audit)
        contacts = HostContacts(db, audit)
        return cls(
            db=db,
            banks=banks,
            keys=keys,
            replica=replica,
            limiter=rate_limiter(redis_url),
            limits=limits,
            metrics=Metrics(),
            default_rate=default_limits(),
            audit=audit,
            users=Users(db, audit),
            sessions=Sessions(db),
            rulesets=rulesets,
            jobs=jobs,
            media=media,
            cases=cases,
            wellness=Wellness(db),
            policy=Policy(db, rulesets=rulesets, jobs=jobs, media=media, audit=audit),
            reports=Reports(db, audit, cases, media, match=match, limits=limits, jobs=jobs),
            consent=ConsentHashes(db, audit, banks=banks),
            complaints=Complaints(cases, audit),
            notices=Notices(db, audit, cases, templates=templates, contacts=contacts, jobs=jobs),
            templates=templates,
            contacts=contacts,
            tmpdir=os.environ.get("SAFEHOLD_TMPDIR") or None,
            vault=vault_from_env(db, audit),
        )

    @property
    def referrals(self) -> Referrals:
        """Referrals to NCMEC (built on use: it follows ``vault`` and ``jobs``)."""
        return Referrals(self.db, self.audit, self.cases, vault=self.vault, jobs=self.jobs)

    def job_context(self) -> JobContext:
        return JobContext(
            db=self.db,
            jobs=self.jobs,
            rulesets=self.rulesets,
            cases=self.cases,
            audit=self.audit,
            media=self.media,
            vault=self.vault,
        )

    def start_background(self, *, worker: bool = True) -> None:
        """Start what runs beside the requests: the in-process job worker (unless the
        deployment runs ``safehold worker`` processes instead)."""
        retry_delays()  # a bad SAFEHOLD_WEBHOOK_RETRIES fails here, not in a job
        context = self.job_context()
        self.jobs.bind(context)  # immediate queues run jobs inside enqueue()
        if not any(
            getattr(x, "safehold_jobs", None) is self.jobs for x in self.cases.decided_listeners
        ):
            listener = decided_listener(self.jobs)
            listener.safehold_jobs = self.jobs
            self.cases.decided_listeners.append(listener)
        if worker and not self.jobs.immediate:
            self.jobs.start_worker(context, workers=_worker_threads())

    def stop_background(self) -> None:
        """Stop the job worker, letting running jobs finish."""
        self.jobs.stop()

    def matcher_ready(self) -> None:
        if not self.replica.loaded:
            raise NotReady("the index is still loading; retry in a few seconds (see /readyz)")


def _worker_threads() -> int:
    """Job worker threads in a ``safehold serve`` process (``SAFEHOLD_WORKER_THREADS``)."""
    raw = os.environ.get("SAFEHOLD_WORKER_THREADS")
    return max(1, int(raw)) if raw and raw.isdigit() else 2


def _hash_slots() -> int:
    """Uploads decoded at once (each may take hundreds of MB): one per core by default."""
    raw = os.environ.get("SAFEHOLD_HASH_CONCURRENCY")
    return max(1, int(raw)) if raw else max(1, os.cpu_count() or 1)

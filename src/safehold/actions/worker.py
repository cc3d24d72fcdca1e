"""Running the job worker outside the web server: ``safehold worker``.

:func:`worker_context` builds the library objects jobs use from a database and a queue;
:func:`run_worker` runs the consumer threads until ``stop`` is set (by SIGTERM/SIGINT in
the CLI), then lets running jobs finish.
"""

from __future__ import annotations

import os
import threading

from safehold.actions.webhooks import retry_delays
from safehold.audit import AuditLog
from safehold.cases.service import Cases
from safehold.errors import InvalidValue
from safehold.jobs import JobContext, Jobs
from safehold.media_store import MediaStore, default_media_root
from safehold.refer.vault import vault_from_env
from safehold.rules.store import RuleSets
from safehold.store.db import Database


def worker_context(db: Database, jobs: Jobs) -> JobContext:
    """The context jobs run with in a process of their own."""
    audit = AuditLog(db)
    root = os.environ.get("SAFEHOLD_MEDIA_DIR") or default_media_root(db)
    return JobContext(
        db=db,
        jobs=jobs,
        rulesets=RuleSets(db),
        cases=Cases(db, audit),
        audit=audit,
        media=MediaStore(db, root),
        vault=vault_from_env(db, audit),
    )


def open_queue(db: Database, queue_url: str | None = None) -> Jobs:
    """The queue named by ``queue_url``, else ``SAFEHOLD_QUEUE_URL``, else the default."""
    return Jobs.from_url(queue_url or os.environ.get("SAFEHOLD_QUEUE_URL"), db.url)


def run_worker(
    db: Database,
    jobs: Jobs,
    *,
    workers: int = 2,
    stop: threading.Event,
    started: threading.Event | None = None,
) -> None:
    """Work the queue in ``workers`` threads until ``stop`` is set; then stop gracefully."""
    if jobs.kind == "memory":
        raise InvalidValue(
            "a separate worker needs a shared queue: set SAFEHOLD_QUEUE_URL to "
            "sqlite:///PATH or redis://HOST:PORT/DB (memory:// lives inside one process)"
        )
    if workers < 1:
        raise InvalidValue("--workers must be at least 1")
    retry_delays()  # refuse a bad SAFEHOLD_WEBHOOK_RETRIES before starting
    jobs.start_worker(worker_context(db, jobs), workers=workers)
    if started is not None:
        started.set()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        jobs.stop()

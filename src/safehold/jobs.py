"""The job queue: work off the request path (rule actions, webhook deliveries) on huey.

Queue modes (``Jobs.from_url``; ``SAFEHOLD_QUEUE_URL``):

- ``sqlite:///PATH`` — a SQLite queue file (the embedded default: ``<database>.jobs``
  next to a SQLite database, ``safehold-jobs.db`` in the working directory otherwise);
- ``redis://HOST:PORT/DB`` — Redis, shared by any number of API replicas and
  ``safehold worker`` processes (at scale);
- ``memory://`` — in this process only (tests; ``?immediate=1`` or ``immediate=True``
  runs every job at once inside :meth:`Jobs.enqueue`).

``?queue=NAME`` on any URL (or ``name=``) picks the queue's name (default ``safehold``).

Jobs are plain functions ``handler(ctx: JobContext, *args)`` registered by name with
:func:`job`; their arguments are JSON values (messages are JSON, never pickle, so a
queue writable by others cannot run code here). A handler must be idempotent: a job may
run again after a crash or a retry. A failing job is logged and retried with backoff
(per handler); it never stops the worker.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from huey import MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer
from huey.registry import Message
from huey.serializer import Serializer
from sqlalchemy.engine import make_url

from safehold.errors import InvalidValue

if TYPE_CHECKING:
    from safehold.audit import AuditLog
    from safehold.cases.service import Cases
    from safehold.media_store import MediaStore
    from safehold.refer.vault import EvidenceVault
    from safehold.rules.store import RuleSets
    from safehold.store.db import Database

log = logging.getLogger("safehold.jobs")

DEFAULT_NAME = "safehold"
BUILTIN_MODULES = (
    "safehold.actions.run",
    "safehold.actions.webhooks",
    "safehold.intake.tasks",
    "safehold.refer.vault",
    "safehold.refer.referrals",
)
"""Modules whose import registers the built-in jobs (imported when a queue is used)."""

Handler = Callable[..., None]


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Handler
    retries: int = 3
    retry_delay: float = 10.0
    periodic: bool = False
    """Also run once a minute (with no arguments) by every running worker."""


HANDLERS: dict[str, JobSpec] = {}


def job(
    name: str, *, retries: int = 3, retry_delay: float = 10.0, periodic: bool = False
) -> Callable[[Handler], Handler]:
    """Register ``func(ctx, *args)`` as the job ``name`` (retried ``retries`` times on an
    exception, after ``retry_delay`` seconds, doubling)."""

    def decorator(func: Handler) -> Handler:
        HANDLERS[name] = JobSpec(name, func, retries, retry_delay, periodic)
        return func

    return decorator


def load_builtin_jobs() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


@dataclass
class JobContext:
    """What a job handler works with: the database and the library objects."""

    db: Database
    jobs: Jobs
    rulesets: RuleSets
    cases: Cases
    audit: AuditLog
    media: MediaStore
    extra: dict[str, Any] = field(default_factory=dict)
    vault: EvidenceVault | None = None
    """The evidence vault (``None`` when no master key is configured)."""


class JobFailed(RuntimeError):
    """A handler ended with something other than an ``Exception`` (e.g. ``SystemExit``)."""


# --------------------------------------------------------------------------- messages as JSON


class JsonSerializer(Serializer):  # type: ignore[misc]
    """huey messages as JSON: task name, ids, times and JSON-valued arguments only."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> Any:
        return _decode(json.loads(bytes(data)))


def _encode(o: Any) -> Any:
    if o is None or isinstance(o, str | bool | int | float):
        return o
    if isinstance(o, Message):
        return {"$m": [_encode(v) for v in o]}
    if isinstance(o, datetime):
        return {"$t": o.isoformat()}
    if isinstance(o, list | tuple):
        return [_encode(v) for v in o]
    if isinstance(o, dict) and all(isinstance(k, str) for k in o):
        return {"$d": {k: _encode(v) for k, v in o.items()}}
    raise TypeError(f"job data must be JSON values, not {type(o).__name__}")


def _decode(o: Any) -> Any:
    if isinstance(o, list):
        return [_decode(v) for v in o]
    if isinstance(o, dict):
        if "$m" in o:
            return Message(*(_decode(v) for v in o["$m"]))
        if "$t" in o:
            return datetime.fromisoformat(o["$t"])
        if "$d" in o:
            return {k: _decode(v) for k, v in o["$d"].items()}
        raise ValueError("not a job message")
    return o


# --------------------------------------------------------------------------- the consumer


class _InProcessConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer without its signal handlers: the host process (``safehold
    serve`` or ``safehold worker``) owns the signals and calls :meth:`Jobs.stop`."""

    def _set_signal_handlers(self) -> None:
        pass


# --------------------------------------------------------------------------- the queue


class Jobs:
    """A job queue: enqueue by name from anywhere, run by workers (threads)."""

    def __init__(self, huey: Huey, *, url: str, kind: str) -> None:
        self.huey = huey
        self.url = url
        self.kind = kind
        self._context: JobContext | None = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sweep_registered = False

    # -- construction

    @classmethod
    def from_url(
        cls,
        url: str | None,
        db_url: str,
        *,
        name: str | None = None,
        immediate: bool = False,
    ) -> Jobs:
        raw = url or default_queue_url(db_url)
        parts = urlsplit(raw)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        # the default queue (one file for every PostgreSQL database used from this
        # directory) is named after its database, so two databases never share jobs
        fallback = DEFAULT_NAME if url else f"{DEFAULT_NAME}_{_digest(db_url)}"
        qname = name or query.pop("queue", fallback)
        immediate = immediate or query.pop("immediate", "0") in ("1", "true", "yes")
        common: dict[str, Any] = {
            "results": False,
            "serializer": JsonSerializer(),
            "utc": True,
        }
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            path = raw.split("://", 1)[1].split("?", 1)[0]
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise InvalidValue(f"queue URL {raw!r} names no file: use sqlite:///PATH")
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            huey: Huey = SqliteHuey(
                qname, filename=str(Path(path).expanduser()), immediate=immediate, **common
            )
            kind = "sqlite"
        elif scheme in ("redis", "rediss", "unix"):
            clean = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            huey = RedisHuey(qname, url=clean, immediate=immediate, **common)
            kind = "redis"
        elif scheme == "memory":
            huey = MemoryHuey(qname, immediate=immediate, **common)
            kind = "memory"
        else:
            raise InvalidValue(
                f"unsupported queue URL {raw!r}: use sqlite:///PATH, redis://HOST:PORT/DB "
                "or memory://"
            )
        return cls(huey, url=_safe_url(raw), kind=kind)

    # -- tasks

    @property
    def immediate(self) -> bool:
        return bool(self.huey.immediate)

    def bind(self, context: JobContext) -> None:
        """The context jobs run with (``start_worker`` binds it; immediate mode needs it)."""
        self._context = context

    def _task(self, name: str) -> Any:
        with self._lock:
            if name in self._tasks:
                return self._tasks[name]
            if name not in HANDLERS:
                load_builtin_jobs()
            spec = HANDLERS.get(name)
            if spec is None:
                raise InvalidValue(f"no job named {name!r}")
            wrapper = self.huey.task(
                name=name,
                retries=spec.retries,
                retry_delay=spec.retry_delay,
                retry_backoff=2,
            )(self._runner(spec))
            self._tasks[name] = wrapper
            return wrapper

    def _runner(self, spec: JobSpec) -> Callable[..., None]:
        def run(*args: Any) -> None:
            ctx = self._context
            if ctx is None:
                raise RuntimeError(f"job {spec.name}: no JobContext bound to this queue")
            try:
                spec.func(ctx, *args)
            except (Exception, KeyboardInterrupt):
                raise
            except BaseException as e:  # SystemExit & co. must not end a worker thread
                raise JobFailed(f"job {spec.name} ended with {type(e).__name__}: {e}") from e

        run.__name__ = spec.name
        run.__module__ = __name__
        return run

    def _register_all(self) -> None:
        load_builtin_jobs()
        for name in list(HANDLERS):
            self._task(name)
        if not self._sweep_registered:
            self._sweep_registered = True

            def periodic_jobs() -> None:
                for spec in list(HANDLERS.values()):
                    if spec.periodic:
                        try:
                            self.enqueue(spec.name)
                        except Exception:
                            log.exception("could not enqueue periodic job %s", spec.name)

            periodic_jobs.__module__ = __name__
            self.huey.periodic_task(crontab(minute="*"), name="safehold_periodic")(periodic_jobs)

    def enqueue(self, task_name: str, *args: Any, delay: float = 0.0) -> str:
        """Queue the job ``task_name(*args)`` (after ``delay`` seconds); its id."""
        _encode(list(args))  # JSON values only: refuse here, not in the worker
        task = self._task(task_name)
        if delay and delay > 0 and not self.immediate:
            result = task.schedule(args=args, delay=delay)
        else:
            result = task(*args)
        return str(getattr(result, "id", "") or "")

    # -- workers

    @property
    def running(self) -> bool:
        return self._consumer is not None

    def start_worker(self, context: JobContext, workers: int = 2, *, poll: float = 1.0) -> None:
        """Run the queue's consumer in ``workers`` threads of this process (plus its
        scheduler for delayed and periodic jobs). Returns at once; :meth:`stop` ends it."""
        self.bind(context)
        if self.immediate:
            return  # jobs run inside enqueue()
        if self._consumer is not None:
            return
        self._register_all()
        consumer = _InProcessConsumer(
            self.huey,
            workers=max(1, workers),
            periodic=True,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=max(0.1, poll),
            scheduler_interval=1,
            worker_type="thread",
            check_worker_health=True,
            shutdown_timeout=30.0,
        )
        consumer.start()
        self._consumer = consumer
        self._stopping.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, name="safehold-jobs-supervisor", daemon=True
        )
        self._supervisor.start()
        log.info("job worker started: %s workers on %s", workers, self.url)

    def _supervise(self) -> None:
        """Replace a worker thread that died (huey's consumer does this in its own main
        loop, which an in-process consumer does not run)."""
        while not self._stopping.wait(2.0):
            consumer = self._consumer
            if consumer is None:
                return
            try:
                consumer.check_worker_health()
            except Exception:
                log.exception("job worker health check failed")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers, letting running jobs finish (up to ``timeout`` seconds)."""
        consumer, self._consumer = self._consumer, None
        self._stopping.set()
        if consumer is not None:
            consumer.shutdown_timeout = timeout
            consumer.stop(graceful=True)
            log.info("job worker stopped")
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
            self._supervisor = None

    def close(self) -> None:
        self.stop()
        close = getattr(self.huey.storage, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.debug("closing the queue storage failed", exc_info=True)

    # -- inspection

    def pending(self) -> int:
        """Jobs waiting to run now."""
        return int(self.huey.pending_count())

    def scheduled(self) -> int:
        """Jobs waiting for their time (retries, delayed jobs)."""
        return int(self.huey.scheduled_count())

    def flush(self) -> None:
        """Drop every queued and scheduled job of this queue (tests, ``--reset``)."""
        self.huey.flush()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "name": self.huey.name,
            "immediate": self.immediate,
            "running": self.running,
            "pending": self.pending(),
            "scheduled": self.scheduled(),
        }


def default_queue_url(db_url: str) -> str:
    """``<database>.jobs`` next to a SQLite file, in memory for an in-memory SQLite
    database, ``safehold-jobs.db`` in the working directory for PostgreSQL."""
    try:
        parsed = make_url(db_url)
    except Exception:
        return f"sqlite:///{Path('safehold-jobs.db').resolve()}"
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return "memory://"
        return f"sqlite:///{Path(parsed.database).expanduser().resolve()}.jobs"
    return f"sqlite:///{Path('safehold-jobs.db').resolve()}"


def _digest(db_url: str) -> str:
    try:
        ident = make_url(db_url).render_as_string(hide_password=True)
    except Exception:
        ident = db_url
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def _safe_url(url: str) -> str:
    """``url`` without a password (for logs and status output)."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url

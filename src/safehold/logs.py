"""Structured logs (structlog): JSON lines on stderr, or readable lines on a terminal.

No log line carries a client IP address, user agent or upload content; request logs
are off (``safehold serve`` turns uvicorn's access log off). ``SAFEHOLD_LOG_LEVEL``
sets the level (default ``info``); ``SAFEHOLD_LOG_FORMAT=json|console`` the format.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import structlog

_configured = False


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing; a closed stream (a test
    harness that captured it, a terminal gone) drops the line instead of raising in
    the thread that logged."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()


def configure_logging() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    level = getattr(logging, os.environ.get("SAFEHOLD_LOG_LEVEL", "info").upper(), logging.INFO)
    fmt = os.environ.get("SAFEHOLD_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The library's own modules log through the standard ``logging`` module (loggers
    # named ``safehold.*``: jobs, actions, webhooks); their lines get the same format.
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger("safehold")
    root.handlers = [handler]
    root.setLevel(level)
    root.propagate = False
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )

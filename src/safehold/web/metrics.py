"""Prometheus metrics: requests by route, latency, index size and change-log lag.

Each process has its own registry (each replica is scraped on its own). Routes are
recorded by their template (``/v1/banks/{name}``), never the raw path, so a client
cannot blow up the number of series; unknown paths count as ``unmatched``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CONVERTER = re.compile(r":[a-z]+}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "safehold_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "safehold_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.index_entries = Gauge(
            "safehold_index_entries",
            "Entries held in this replica's index.",
            registry=self.registry,
        )
        self.change_id = Gauge(
            "safehold_index_change_id",
            "Id of the last change-log row applied to this replica's index.",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "safehold_index_lag_seconds",
            "Seconds since this replica last caught up with the change log.",
            registry=self.registry,
        )
        self.scans = Counter(
            "safehold_scans",
            "Scanned items by decision.",
            ["decision"],
            registry=self.registry,
        )
        self.lookups = Counter(
            "safehold_lookup_values",
            "Signal values looked up, by signal type.",
            ["signal_type"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "safehold_rate_limited", "Requests refused by a rate limit.", registry=self.registry
        )
        self._refresh: list[Callable[[], None]] = []

    def on_collect(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` before each scrape (to set gauges from live state)."""
        self._refresh.append(fn)

    def render(self) -> bytes:
        for fn in self._refresh:
            fn()
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route: Any = scope.get("route")
            path = _CONVERTER.sub(
                "}", scope.get("safehold.route") or getattr(route, "path", None) or "unmatched"
            )
            method = str(scope.get("method", "GET"))
            if method not in _METHODS:
                method = "other"
            self.metrics.requests.labels(path, method, str(status["code"])).inc()
            self.metrics.latency.labels(path, method).observe(time.perf_counter() - started)

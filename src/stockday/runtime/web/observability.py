"""What every HTTP service exposes besides its API: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockday.runtime.logs import request_id
from stockday.runtime.web.faults import FaultInjection

ReadinessCheck = Callable[[], Awaitable[None]]

log = logging.getLogger("stockday.web")

REQUESTS = Counter(
    "stockday_http_requests_total",
    "HTTP requests answered, by service, route and status class.",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "stockday_http_request_duration_seconds",
    "HTTP request latency, by service and route.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

PROBE_PATHS = frozenset({"/api/ping", "/api/ready", "/metrics"})
READINESS_TIMEOUT_SECONDS = 2.0


class RequestMetrics:
    """ASGI middleware counting requests per route template (not per raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Each (method, route, status class)'s counter and histogram, looked up once: labels()
        # takes a lock and builds its key on every call.
        self._series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def _metrics_of(self, method: str, route: str, status: str) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                REQUESTS.labels(self.service, method, route, status),
                LATENCY.labels(self.service, method, route),
            )
            self._series[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        rid = _incoming_request_id(scope) or new_request_id()
        token = request_id.set(rid)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id.reset(token)
            # The router records the matched route in the (shared) scope: no second matching.
            route = getattr(scope.get("route"), "path", "unmatched")
            requests, latency = self._metrics_of(scope["method"], route, f"{status // 100}xx")
            requests.inc()
            latency.observe(time.perf_counter() - started)


# Request ids correlate log lines and traces; they need to be unique, not unguessable. A random
# prefix per process and a counter make one without the system call for randomness that a
# uuid4 costs on every request (3 % of a page view's time).
_PROCESS_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """A 32-hex-digit id unique across processes: this process's prefix, then a counter."""
    return f"{_PROCESS_PREFIX}{next(_request_numbers):016x}"


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _incoming_request_id(scope: Scope) -> str | None:
    """The caller's X-Request-ID if it is a sane token (it ends up in logs), else None."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def install_observability(
    app: FastAPI,
    *,
    service: str,
    readiness_checks: Sequence[ReadinessCheck] = (),
    readiness_timeout: float = READINESS_TIMEOUT_SECONDS,
    fault_error_rate: float = 0.0,
) -> None:
    """Add ``/api/ping`` (liveness), ``/api/ready`` (readiness) and ``/metrics`` to an app.

    Liveness says only that the process answers; it never looks at dependencies, so a slow
    database cannot get healthy replicas killed. Readiness runs every check with a timeout.
    A ``fault_error_rate`` above 0 fails that share of the other requests (release checks only).
    """

    @app.get("/api/ping", include_in_schema=False)
    async def ping() -> dict[str, str | int]:
        return {"status": "ok", "service": service, "pid": os.getpid()}

    reporter = ReadinessLog(service)

    @app.get("/api/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        reasons = await run_readiness_checks(readiness_checks, readiness_timeout)
        reporter.record(reasons)
        if reasons:
            return JSONResponse(
                {"status": "unready", "service": service, "reasons": reasons}, status_code=503
            )
        return JSONResponse({"status": "ready", "service": service})

    # Each replica is one process and exports its own metrics, as each pod does: the monitoring
    # system sums them per service.
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if fault_error_rate > 0:
        # Inside the metrics middleware, so the injected errors are counted like real ones.
        app.add_middleware(
            FaultInjection, rate=fault_error_rate, spared_paths=PROBE_PATHS, rng=random.Random()
        )
    app.add_middleware(RequestMetrics, service=service)


class ReadinessLog:
    """Logs readiness changes, one line per reason, once: probes every few seconds stay quiet.

    A missing table or queue is then reported once, as the line naming it and its setting, not
    as a stack trace on every probe.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.reasons: set[str] = set()
        self.ready: bool | None = None

    def record(self, reasons: Sequence[str]) -> None:
        current = set(reasons)
        for reason in sorted(current - self.reasons):
            log.warning("%s not ready: %s", self.service, reason)
        if not current and self.ready is False:
            log.info("%s ready again", self.service)
        self.reasons = current
        self.ready = not current


async def run_readiness_checks(
    checks: Sequence[ReadinessCheck], seconds_each: float = READINESS_TIMEOUT_SECONDS
) -> list[str]:
    """Run checks concurrently; return one reason per failed check (empty when ready)."""

    async def one(check: ReadinessCheck) -> str | None:
        try:
            await asyncio.wait_for(check(), seconds_each)
        except TimeoutError:
            return f"{getattr(check, '__qualname__', 'check')} timed out"
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    results = await asyncio.gather(*(one(c) for c in checks))
    return [r for r in results if r is not None]

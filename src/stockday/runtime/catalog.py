"""The five services, described once: the stack, the container image, the CLI and the deploy
checks all read this catalog, and each service's command line is built from it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum


class ServiceKind(StrEnum):
    HTTP = "http"
    CONSUMER = "consumer"


@dataclass(frozen=True, slots=True)
class HealthPaths:
    """Where a service answers its probes and serves its metrics."""

    liveness: str = "/api/ping"
    readiness: str = "/api/ready"
    metrics: str = "/metrics"


@dataclass(frozen=True, slots=True)
class Service:
    """One service: how it runs and which queues (named by Settings fields) it uses.

    Ports of the local stack, above its port base: ``replica_port_offset`` is the first
    replica's own port (its API, or a consumer's health server; the next replicas take the ports
    after it), and ``front_port_offset`` an HTTP service's one address for its callers, where
    the load balancer listens (``None`` for a consumer: nothing calls it).
    """

    name: str
    kind: ServiceKind
    replica_port_offset: int
    # "module:factory" of an ASGI app factory (HTTP) or the consumer's runnable module.
    entry: str
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    front_port_offset: int | None = None
    health: HealthPaths = HealthPaths()

    @property
    def is_http(self) -> bool:
        return self.kind is ServiceKind.HTTP


# Each service comes before those it calls: the stack starts them in reverse and stops them in
# this order, the front door first.
SERVICES: tuple[Service, ...] = (
    Service(
        "frontend", ServiceKind.HTTP, 30, "stockday.frontend.app:app_factory", front_port_offset=0
    ),
    Service(
        "queue-worker", ServiceKind.CONSUMER, 20, "stockday.queue_worker", ("logo_events_queue",)
    ),
    Service(
        "logo-resizer",
        ServiceKind.CONSUMER,
        10,
        "stockday.logo_resizer",
        consumes=("logo_jobs_queue",),
        produces=("logo_events_queue",),
    ),
    Service(
        "stock-symbol",
        ServiceKind.HTTP,
        40,
        "stockday.stock_symbol.app:app_factory",
        produces=("logo_jobs_queue",),
        front_port_offset=1,
    ),
    Service(
        "stock-price",
        ServiceKind.HTTP,
        50,
        "stockday.stock_price.app:app_factory",
        front_port_offset=2,
    ),
)

SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
HTTP_SERVICES: tuple[Service, ...] = tuple(s for s in SERVICES if s.is_http)
CONSUMERS: tuple[Service, ...] = tuple(s for s in SERVICES if not s.is_http)
# The Settings fields naming every queue, upstream first (the order the pipeline fills them).
QUEUE_SETTINGS: tuple[str, ...] = tuple(
    dict.fromkeys(q for s in reversed(SERVICES) for q in (*s.produces, *s.consumes))
)


def service(name: str) -> Service:
    """The service called ``name``; ValueError naming the known ones otherwise."""
    for candidate in SERVICES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown service {name!r}: one of {', '.join(SERVICE_NAMES)}")


def uvicorn_args(name: str, host: str, port: int) -> list[str]:
    """uvicorn command-line arguments that serve one HTTP service in one process."""
    found = service(name)
    if not found.is_http:
        raise ValueError(f"{name} is a consumer, not an HTTP service")
    return [
        "--factory",
        found.entry,
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        # The apps read X-Forwarded-For themselves, trusting STOCKDAY_TRUSTED_PROXIES only.
        "--no-proxy-headers",
        "--timeout-graceful-shutdown",
        "10",
    ]


def consumer_args(name: str, host: str, port: int) -> list[str]:
    """Interpreter arguments that run one consumer replica, its health server on host:port."""
    found = service(name)
    if found.is_http:
        raise ValueError(f"{name} is an HTTP service, not a consumer")
    return ["-m", found.entry, "--health-port", str(port), "--health-host", host]


def service_command(name: str, host: str, port: int) -> list[str]:
    """The whole command line that runs one replica of a service on ``host:port``."""
    if service(name).is_http:
        return [sys.executable, "-m", "uvicorn", *uvicorn_args(name, host, port)]
    return [sys.executable, *consumer_args(name, host, port)]

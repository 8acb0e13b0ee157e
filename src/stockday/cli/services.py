"""`stockday serve` and `stockday consume`: one service of the catalog in the foreground."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

from stockday.cli.session import valid_settings
from stockday.runtime import catalog

# Choices built from the catalog (mypy cannot see their members).
HttpService = StrEnum(  # type: ignore[misc]
    "HttpService", {s.name.upper().replace("-", "_"): s.name for s in catalog.HTTP_SERVICES}
)
ConsumerService = StrEnum(  # type: ignore[misc]
    "ConsumerService", {s.name.upper().replace("-", "_"): s.name for s in catalog.CONSUMERS}
)


def serve(
    service: HttpService,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run one replica of an HTTP service: one uvicorn process (more replicas: more processes
    behind a load balancer, as `stockday up` runs them)."""
    valid_settings()
    argv = catalog.service_command(service.value, host, port)
    # Become uvicorn (exec, not a child), so that signals reach it directly.
    os.execv(sys.executable, argv)  # noqa: S606


def consume(
    service: ConsumerService,
    health_port: Annotated[
        int | None, typer.Option(help="Serve /api/ping, /api/ready, /metrics here")
    ] = None,
) -> None:
    """Run one queue consumer until SIGTERM (same as ``python -m stockday.<consumer>``)."""
    import importlib

    valid_settings()
    port = [] if health_port is None else ["--health-port", str(health_port)]
    entry = importlib.import_module(f"{catalog.service(service.value).entry}.__main__")
    entry.main(port)

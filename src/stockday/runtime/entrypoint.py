"""The process entry point shared by the consumers (kept free of the CLI's heavier imports)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from stockday.runtime.logs import configure_logging
from stockday.runtime.settings import Settings, describe_invalid_settings, get_settings
from stockday.runtime.tracing import configure_tracing, shutdown_tracing

Runner = Callable[..., Coroutine[Any, Any, None]]


def main(service: str, run: Runner, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m stockday.{service.replace('-', '_')}")
    parser.add_argument(
        "--health-port", type=int, default=None, help="serve /api/ping, /api/ready, /metrics here"
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="address of the health server (0.0.0.0 in a container, for the kubelet's probes)",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    configure_logging(settings, service)
    configure_tracing(settings, service)
    try:
        asyncio.run(run(settings, health_port=args.health_port, health_host=args.health_host))
    finally:
        shutdown_tracing()


def load_settings_or_exit() -> Settings:
    """The settings, or one line per invalid variable on stderr and exit code 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        for line in describe_invalid_settings(exc):
            print(line, file=sys.stderr)
        raise SystemExit(2) from None

"""The container image's entry point: one image, five services, the argument names which.

Every service listens on one port (the ``port`` setting: ``PORT``, else 8080): an HTTP service
serves its API and probes there, a consumer its /api/ping, /api/ready and /metrics. The process
execs the server, so it is PID 1's only child and gets the kubelet's SIGTERM directly.
"""

from __future__ import annotations

import argparse
import os

from stockday.runtime.catalog import SERVICE_NAMES, service_command
from stockday.runtime.entrypoint import load_settings_or_exit
from stockday.runtime.settings import DEFAULT_PORT

SERVICES = SERVICE_NAMES

__all__ = ["DEFAULT_PORT", "SERVICES", "main", "service_command"]


def main(argv: list[str] | None = None) -> None:
    settings = load_settings_or_exit()
    parser = argparse.ArgumentParser(
        prog="python -m stockday.runtime.container", description="Run one Stock-of-the-Day service."
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default: all)")
    parser.add_argument(
        "--port",
        type=int,
        default=settings.port,
        help=f"listen port (default: $PORT, else {DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    command = service_command(args.service, args.host, args.port)
    os.execv(command[0], command)  # noqa: S606 (a fixed command line, no shell involved)


if __name__ == "__main__":
    main()

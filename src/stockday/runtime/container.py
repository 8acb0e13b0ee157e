"""The container image's entry point: one image, five services, the argument names which.

Every service listens on one port (8080 unless ``PORT`` says otherwise): an HTTP service serves
its API and probes there, a consumer its /api/ping, /api/ready and /metrics. The process execs
the server, so it is PID 1's only child and gets the kubelet's SIGTERM directly.
"""

from __future__ import annotations

import argparse
import os
import sys

from stockday.devstack.supervisor import CONSUMERS, HTTP_SERVICES, consumer_args, uvicorn_args

SERVICES = (*HTTP_SERVICES, *CONSUMERS)
DEFAULT_PORT = 8080


def service_command(service: str, host: str, port: int) -> list[str]:
    """The command line that runs one replica of ``service`` on ``host:port``."""
    if service in HTTP_SERVICES:
        return [sys.executable, "-m", "uvicorn", *uvicorn_args(service, host, port)]
    if service in CONSUMERS:
        return [sys.executable, *consumer_args(service, host, port)]
    raise ValueError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stockday.runtime.container", description="Run one Stock-of-the-Day service."
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default: all)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", DEFAULT_PORT)),
        help=f"listen port (default: $PORT, else {DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    command = service_command(args.service, args.host, args.port)
    os.execv(command[0], command)  # noqa: S606 (a fixed command line, no shell involved)


if __name__ == "__main__":
    main()

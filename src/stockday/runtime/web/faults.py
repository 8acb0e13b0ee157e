"""Fault injection for release checks: a replica that fails a share of its requests on purpose.

`stockday canary analyze` must be seen to roll back a bad release, so the canary tests start a
replica with ``STOCKDAY_FAULT_ERROR_RATE`` set. Probes and metrics are never failed: a bad
release passes its health checks, and only its users' requests show the fault, as in real life.
"""

from __future__ import annotations

import random

from starlette.types import ASGIApp, Receive, Scope, Send

from stockday.runtime.web.errors import error_response

INJECTED_FAULT_DETAIL = "injected fault (STOCKDAY_FAULT_ERROR_RATE)"


class FaultInjection:
    """ASGI middleware answering 500 to a random ``rate`` share of the non-probe requests."""

    def __init__(
        self, app: ASGIApp, rate: float, spared_paths: frozenset[str], rng: random.Random
    ) -> None:
        self.app = app
        self.rate = rate
        self.spared_paths = spared_paths
        self.rng = rng

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.spared_paths
            or self.rng.random() >= self.rate
        ):
            await self.app(scope, receive, send)
            return
        await error_response(500, INJECTED_FAULT_DETAIL)(scope, receive, send)

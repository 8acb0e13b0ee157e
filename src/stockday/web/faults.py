"""Fault injection for release checks: a replica that fails a share of its requests on purpose.

`stockday canary analyze` must be seen to roll back a bad release, so the canary tests start a
replica with ``STOCKDAY_FAULT_ERROR_RATE`` set. Probes and metrics are never failed: a bad
release passes its health checks, and only its users' requests show the fault, as in real life.
"""

from __future__ import annotations

import json
import random

from starlette.types import ASGIApp, Receive, Scope, Send

INJECTED_FAULT_BODY = json.dumps({"detail": "injected fault (STOCKDAY_FAULT_ERROR_RATE)"}).encode()


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
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(INJECTED_FAULT_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": INJECTED_FAULT_BODY})

"""Steady traffic against a running stack while a failure test breaks it: page views from a few
visitors and stock creations from a writer, every outcome recorded with its time.

Visitors keep their connections alive, as browsers do, so a dead or hung replica is met on a
kept-alive connection as well as on new ones. The writer creates stocks through stock-symbol's
front port (HAProxy), retrying a failed create with the same symbol: a create is idempotent
(the second answer is 409 once the first one landed), so a retried one is acknowledged by
either answer. What was acknowledged must be readable afterwards: no acknowledged write lost.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.support.stack import RunningStack

VISITOR_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the answer (or the error) came
    ok: bool
    why: str


@dataclass
class Traffic:
    page_views: list[Outcome] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # symbols created, as answered
    create_failures: list[str] = field(default_factory=list)

    def served(self, start: float | None = None, end: float | None = None) -> float:
        """The share of page views answered 200, among those that ended in [start, end]."""
        chosen = self.window(start, end)
        return sum(o.ok for o in chosen) / len(chosen) if chosen else 0.0

    def window(self, start: float | None = None, end: float | None = None) -> list[Outcome]:
        low = start if start is not None else float("-inf")
        high = end if end is not None else float("inf")
        return [o for o in self.page_views if low <= o.at <= high]

    def failures(self) -> list[str]:
        return [o.why for o in self.page_views if not o.ok]

    def first_served_after(self, moment: float) -> float | None:
        """When the first page view that ended after ``moment`` and succeeded ended."""
        return next((o.at for o in self.page_views if o.at > moment and o.ok), None)

    def summary(self) -> str:
        total = len(self.page_views)
        good = sum(o.ok for o in self.page_views)
        return (
            f"page views {total}, served {good} ({100 * good / max(total, 1):.3f} %), "
            f"creates acknowledged {len(self.acknowledged)}, failures {self.failures()[:20]}, "
            f"create failures {self.create_failures[:20]}"
        )


class Load:
    """``with Load(stack) as load: ...`` runs the traffic for the block; ``load.traffic`` then
    holds what happened."""

    def __init__(self, stack: RunningStack, visitors: int = 4, prefix: str = "LD") -> None:
        self.stack = stack
        self.visitors = visitors
        self.prefix = prefix
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._visit, daemon=True) for _ in range(self.visitors)
        ]
        self._threads.append(threading.Thread(target=self._write, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=VISITOR_TIMEOUT_SECONDS * 3)

    def _visit(self) -> None:
        with httpx.Client(base_url=self.stack.frontend, timeout=VISITOR_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                try:
                    answer = client.get("/")
                    ok, why = answer.status_code == 200, str(answer.status_code)
                except httpx.HTTPError as exc:
                    ok, why = False, type(exc).__name__
                with self._lock:
                    self.traffic.page_views.append(Outcome(time.monotonic(), ok, why))
                time.sleep(0.01)  # a few visitors, not a flood: the stack must not be the limit

    def _write(self) -> None:
        with httpx.Client(base_url=self.stack.symbol, timeout=VISITOR_TIMEOUT_SECONDS) as client:
            for number in itertools.count():
                if self._stop.is_set():
                    return
                symbol = f"{self.prefix}{number:04d}"
                if self._create(client, symbol):
                    with self._lock:
                        self.traffic.acknowledged.append(symbol)
                time.sleep(0.05)

    def _create(self, client: httpx.Client, symbol: str) -> bool:
        """Create ``symbol``, retrying until answered; whether the create was acknowledged."""
        body = {"symbol": symbol, "name": f"{symbol} Load Co."}
        for attempt in range(10):
            try:
                answer = client.post("/api/stocks", json=body)
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            else:
                if answer.status_code == 201 or (answer.status_code == 409 and attempt > 0):
                    return True
                why = f"{answer.status_code} {answer.text[:100]}"
            with self._lock:
                self.traffic.create_failures.append(f"{symbol}: {why}")
            if self._stop.wait(0.2):
                return False
        return False


def lost_writes(stack: RunningStack, symbols: list[str]) -> list[str]:
    """The acknowledged symbols that stock-symbol cannot find now."""
    lost = []
    with httpx.Client(base_url=stack.symbol, timeout=10.0) as client:
        for symbol in symbols:
            if client.get(f"/api/stocks/{symbol}").status_code != 200:
                lost.append(symbol)
    return lost

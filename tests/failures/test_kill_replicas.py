"""Steady page views while one replica of each HTTP service is killed every 10 s: none lost.

Sixty seconds of page views from a few visitors (each page view on a fresh
connection, as separate visitors' browsers make them), while every 10 s one uvicorn worker of
the frontend, stock-symbol and stock-price is killed with SIGKILL. uvicorn replaces the
workers; the frontend retries its idempotent call to stock-symbol once on a dead connection,
and the price path falls back through its breaker. At least 99.9 % of page views must succeed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import RunningStack, free_port_base

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 60.0
KILL_EVERY_SECONDS = 10.0
VISITORS = 4


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path / "data", free_port_base())
    running.start()
    yield running
    running.stop()


def worker_pid(base_url: str) -> int | None:
    try:
        return int(httpx.get(f"{base_url}/api/ping", timeout=2).json()["pid"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def test_page_views_survive_a_replica_of_each_service_killed_every_ten_seconds(
    stack: RunningStack,
) -> None:
    with stack.client(stack.symbol) as api:
        for symbol in ("KILA", "KILB", "KILC"):
            assert (
                api.post("/api/stocks", json={"symbol": symbol, "name": symbol}).status_code == 201
            )

    outcomes: list[bool] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def visitor() -> None:
        headers = {"Connection": "close"}
        while not stop.is_set():
            try:
                answer = httpx.get(stack.frontend + "/", headers=headers, timeout=10)
                ok = answer.status_code == 200
                why = f"{answer.status_code}"
            except httpx.HTTPError as exc:
                ok, why = False, type(exc).__name__
            with lock:
                outcomes.append(ok)
                if not ok:
                    failures.append(why)
            time.sleep(0.02)

    threads = [threading.Thread(target=visitor, daemon=True) for _ in range(VISITORS)]
    for thread in threads:
        thread.start()
    killed: list[tuple[str, int]] = []
    started = time.monotonic()
    try:
        next_kill = started + KILL_EVERY_SECONDS
        while time.monotonic() - started < LOAD_SECONDS:
            if time.monotonic() >= next_kill:
                for service, url in (
                    ("frontend", stack.frontend),
                    ("stock-symbol", stack.symbol),
                    ("stock-price", stack.price),
                ):
                    pid = worker_pid(url)
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                        killed.append((service, pid))
                next_kill += KILL_EVERY_SECONDS
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)

    total, good = len(outcomes), sum(outcomes)
    print(
        f"page views {total}, succeeded {good} ({100 * good / max(total, 1):.3f} %), "
        f"workers killed {len(killed)}, failures {failures}"
    )
    assert len(killed) >= 15  # five rounds or more, three services each
    assert total >= 500
    assert good / total >= 0.999, failures

"""SIGTERM stops the stack gracefully: page views in flight are answered, none is cut off.

While visitors load pages, `stockday up` gets SIGTERM. HAProxy stops taking connections and
lets the open ones finish before the frontend stops; uvicorn finishes the requests it has.
Every page view either gets its 200 or finds nothing listening (connection refused): no answer
is ever cut off half-way (a reset, or a connection closed without a response).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.failures.conftest import StartStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

VISITORS = 4


def test_page_views_in_flight_are_answered_when_the_stack_is_stopped(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    with httpx.Client(base_url=stack.symbol, timeout=10) as api:
        assert api.post("/api/stocks", json={"symbol": "STOP", "name": "Stop"}).status_code == 201

    answered = 0
    refused = 0
    cut_off: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def visitor() -> None:
        nonlocal answered, refused
        while not done.is_set():
            try:
                page = httpx.get(stack.frontend + "/", headers={"Connection": "close"}, timeout=10)
                with lock:
                    if page.status_code == 200:
                        answered += 1
                    else:
                        cut_off.append(f"status {page.status_code}")
            except httpx.ConnectError:
                with lock:
                    refused += 1
                time.sleep(0.05)
            except httpx.HTTPError as exc:
                with lock:
                    cut_off.append(type(exc).__name__)

    threads = [threading.Thread(target=visitor, daemon=True) for _ in range(VISITORS)]
    for thread in threads:
        thread.start()

    def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"{what}: answered {answered}, refused {refused}"
            time.sleep(0.05)

    until(lambda: answered > 50, "no steady load before the stop")
    assert stack.process is not None
    stack.process.send_signal(signal.SIGTERM)
    code = stack.process.wait(timeout=60)
    until(lambda: refused > 0, "no visitor came after the stop")
    done.set()
    for thread in threads:
        thread.join(timeout=15)
    print(f"answered {answered}, refused after the stop {refused}, cut off {cut_off}")
    assert code == 0
    assert answered > 50
    assert refused > 0  # the visitors really kept coming after the stop
    assert cut_off == []

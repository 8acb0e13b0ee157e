"""The whole stack killed with SIGKILL during writes and restarted: every create that was
answered 2xx is present."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import httpx
import pytest

from stockday.runtime import composition
from tests.failures.conftest import StartStack
from tests.failures.processes import descendants, send, wait_until_gone
from tests.support.stack import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

WRITE_SECONDS_BEFORE_KILL = 3.0
MIN_WRITES_BEFORE_KILL = 20
SERVED_CHECKS = 50


class Writer(threading.Thread):
    """Creates stocks one after another, as fast as they are answered, until told to stop;
    records each create answered 2xx and each that failed (refused, reset, timed out)."""

    def __init__(self, stack: RunningStack) -> None:
        super().__init__(daemon=True)
        self.base = stack.symbol
        self.acknowledged: list[str] = []
        self.failed: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=2.0) as api:
            i = 0
            while not self.done.is_set():
                symbol = f"W{i:05d}"
                i += 1
                try:
                    answer = api.post("/api/stocks", json={"symbol": symbol, "name": "Written"})
                except httpx.HTTPError:
                    self.failed.append(symbol)
                    time.sleep(0.01)
                    continue
                if answer.is_success:
                    self.acknowledged.append(symbol)
                else:
                    self.failed.append(symbol)


def kill_whole_tree(root: int) -> set[int]:
    """SIGKILL ``root`` and every process below it, leaving none of them a chance to react.

    Everything is frozen first (SIGSTOP: no supervisor can restart, no process can shut down
    gracefully on its parent's death signal), walked again for anything started meanwhile,
    then killed.
    """
    os.kill(root, signal.SIGSTOP)
    tree = {root} | descendants(root)
    while True:
        for pid in tree:
            send(pid, signal.SIGSTOP)
        again = {root} | descendants(root)
        if again <= tree:
            break
        tree |= again
    for pid in tree:
        send(pid, signal.SIGKILL)
    return tree


def test_every_acknowledged_create_survives_a_kill_of_the_whole_stack(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    assert stack.process is not None
    writer = Writer(stack)
    writer.start()
    try:
        writing_since = time.monotonic()
        while time.monotonic() < writing_since + 20 and (
            len(writer.acknowledged) < MIN_WRITES_BEFORE_KILL
            or time.monotonic() < writing_since + WRITE_SECONDS_BEFORE_KILL
        ):
            time.sleep(0.05)
        acknowledged_before = len(writer.acknowledged)
        killed = kill_whole_tree(stack.process.pid)
        stack.process.wait(timeout=10)
        left = wait_until_gone(killed, timeout=10)
        assert not left, f"still alive after SIGKILL: {left}"
    finally:
        writer.done.set()
        writer.join(timeout=10)
    assert acknowledged_before >= MIN_WRITES_BEFORE_KILL, "too few writes before the kill"
    acknowledged = list(writer.acknowledged)

    restarted_at = time.monotonic()
    stack.start()
    restart_took = time.monotonic() - restarted_at
    stored = stored_symbols(stack)
    missing = [s for s in acknowledged if s not in stored]
    unacknowledged_present = [s for s in writer.failed if s in stored]
    with stack.client(stack.symbol) as api:
        # The service answers for them too, the last ones written before the kill above all.
        recent = acknowledged[-SERVED_CHECKS:]
        not_served = [s for s in recent if api.get(f"/api/stocks/{s}").status_code != 200]
        total = api.get("/api/stocks", params={"limit": 1}).json()["total"]
    print(
        f"\n{len(acknowledged)} creates acknowledged, {len(writer.failed)} failed; "
        f"{len(killed)} processes killed with SIGKILL; restarted in {restart_took:.1f}s; "
        f"{len(missing)} acknowledged missing; {len(unacknowledged_present)} unacknowledged "
        f"but stored; {total} stocks stored"
    )
    assert not missing, missing
    assert not not_served, not_served
    # Nothing stored that was not written: the acknowledged ones and those cut off mid-answer.
    assert stored == set(acknowledged) | set(unacknowledged_present)
    assert total == len(stored)


def stored_symbols(stack: RunningStack) -> set[str]:
    """Every symbol in the stack's stock store, read page by page."""

    async def read() -> set[str]:
        repository = composition.stock_repository(stack.settings)
        symbols: set[str] = set()
        cursor = None
        try:
            while True:
                page = await repository.list(limit=200, cursor=cursor)
                symbols |= {stock.symbol for stock in page.items}
                if page.next_cursor is None:
                    return symbols
                cursor = page.next_cursor
        finally:
            await repository.close()

    return asyncio.run(read())

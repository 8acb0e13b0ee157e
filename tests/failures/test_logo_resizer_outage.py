"""logo-resizer stopped while 100 stocks with logos are added; started again: all 100 logos
become ready, none lost, exactly one stored logo object per stock."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from stockday.domain.stocks import Stock
from stockday.runtime import composition
from tests.failures.conftest import StartStack
from tests.failures.processes import Signals, ping_pid
from tests.support import images as sample_images
from tests.support.stack import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

STOCKS = 100  # enough stocks that the outage catches jobs at every stage
SYMBOLS = [f"LR{i:03d}" for i in range(STOCKS)]
# The stack would kill and replace replicas stopped for this long; this test stops them on
# purpose (a paused node, a debugger) and wants the same processes to carry on when resumed.
NO_HANG_LIMIT = "3600"


def stored(stack: RunningStack) -> tuple[dict[str, Stock | None], list[str]]:
    """The stocks as stored, and every key under the object store's logos/ prefix."""

    async def read() -> tuple[dict[str, Stock | None], list[str]]:
        repository = composition.stock_repository(stack.settings)
        store = composition.object_store(stack.settings)
        try:
            stocks = {symbol: await repository.get(symbol) for symbol in SYMBOLS}
            return stocks, [info.key for info in await store.list("logos/")]
        finally:
            await repository.close()
            await store.close()

    return asyncio.run(read())


def test_logos_added_while_the_resizer_is_stopped_are_all_made_once(
    start_stack: StartStack,
) -> None:
    stack = start_stack(STOCKDAY_HANG_SECONDS=NO_HANG_LIMIT)
    replicas = stack.replicas_of("logo-resizer")
    with httpx.Client(timeout=2.0) as client, Signals() as signals:
        resizers = [ping_pid(client, r.port, r.host) for r in replicas]
        assert None not in resizers
        assert resizers == [stack.pid_of(r.name) for r in replicas]  # the supervisor's own
        for pid in resizers:
            assert pid is not None
            signals.stop(pid)

        started = time.monotonic()
        with stack.client(stack.symbol) as api:
            for i, symbol in enumerate(SYMBOLS):
                logo = sample_images.png(40 + i, 30, color=(i, 255 - i, 90, 255))
                upload = api.post("/api/uploads", files={"file": ("l.png", logo, "image/png")})
                assert upload.status_code == 201, upload.text
                created = api.post(
                    "/api/stocks",
                    json={
                        "symbol": symbol,
                        "name": f"Resizer Outage {i}",
                        "upload_id": upload.json()["upload_id"],
                    },
                )
                assert created.status_code == 201, created.text
            added_in = time.monotonic() - started

            # Nothing resized them meanwhile: every logo waits, none was lost on the way.
            states = logo_states(api)
            assert states == dict.fromkeys(SYMBOLS, "pending")
            assert stored(stack)[1] == []

            for pid in resizers:
                assert pid is not None
                signals.resume(pid)
            resumed = time.monotonic()
            while time.monotonic() < resumed + 60:
                states = logo_states(api)
                if "pending" not in states.values():
                    break
                time.sleep(0.2)
            ready_after = time.monotonic() - resumed
        # The same processes did the work: resumed, not replaced.
        assert [ping_pid(client, r.port, r.host) for r in replicas] == resizers

    print(
        f"\n{STOCKS} stocks with logos added in {added_in:.1f}s with logo-resizer stopped; "
        f"all ready {ready_after:.1f}s after it was resumed"
    )
    assert states == dict.fromkeys(SYMBOLS, "ready")
    stocks, keys = stored(stack)
    expected = []
    for symbol, stock in stocks.items():
        assert stock is not None and stock.logo.key is not None, symbol
        assert stock.logo.key.startswith(f"logos/{symbol}/")
        expected.append(stock.logo.key)
    assert sorted(keys) == sorted(expected)  # exactly one object per stock, and it is its key


def logo_states(api: httpx.Client) -> dict[str, str]:
    """Every stock's logo state, from one listing."""
    listed = api.get("/api/stocks", params={"limit": 200}).json()
    assert listed["total"] == STOCKS and listed["next_cursor"] is None
    return {s["symbol"]: s["logo"]["state"] for s in listed["items"]}

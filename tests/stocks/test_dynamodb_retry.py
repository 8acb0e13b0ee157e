"""The DynamoDB adapter's retry budget: bounded by time, with jittered exponential pauses."""

from __future__ import annotations

import random

import pytest

from stockday.stocks.dynamodb_retry import BACKOFF_CAP_SECONDS, Retries

pytestmark = pytest.mark.anyio


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_retries_continue_until_the_budget_is_spent_however_many_attempts() -> None:
    clock = Clock()
    retries = Retries(random.Random(7), 5.0, clock=clock)
    # Far more attempts than any fixed count, as long as they fit in the budget.
    for _ in range(100):
        assert await retries.pause()
        clock.now += 0.04
    clock.now += 1.0
    assert not await retries.pause()


async def test_pauses_are_jittered_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("stockday.stocks.dynamodb_retry.asyncio.sleep", record)
    retries = Retries(random.Random(7), 60.0, clock=Clock())
    for _ in range(40):
        assert await retries.pause()
    assert all(0 <= s <= BACKOFF_CAP_SECONDS for s in slept)
    assert len(set(slept)) == len(slept)  # full jitter: no two replicas wait in step
    assert max(slept[20:]) > 10 * max(slept[:2])  # the ceiling grows with each lost race

"""SqliteQueue specifics: the injected clock, the file layout, several handles and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stockday.domain.errors import BackendUnavailable
from stockday.queues.sqlite import SqliteQueue
from tests.support.clock import FakeClock
from tests.support.readonly import run_read_only


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queues.sqlite3"


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


# -- with an injected clock (no real waiting) -----------------------------------------------


@pytest.mark.anyio
async def test_visibility_follows_the_clock(db_path: Path, clock: FakeClock) -> None:
    queue = SqliteQueue(db_path, "jobs", clock=clock)
    await queue.send("work")
    [first] = await queue.receive(wait_seconds=0, visibility_timeout=30)
    clock.advance(29.9)
    assert await queue.receive(wait_seconds=0) == []
    clock.advance(0.1)
    [second] = await queue.receive(wait_seconds=0, visibility_timeout=30)
    assert (second.message_id, second.receive_count) == (first.message_id, 2)
    assert second.receipt != first.receipt
    await queue.close()


@pytest.mark.anyio
async def test_delay_and_ages_follow_the_clock(db_path: Path, clock: FakeClock) -> None:
    queue = SqliteQueue(db_path, "jobs", clock=clock)
    sent_at = clock.now
    await queue.send("later", delay_seconds=10)
    clock.advance(9)
    assert await queue.receive(wait_seconds=0) == []
    stats = await queue.stats()
    assert (stats.visible, stats.in_flight, stats.oldest_age_seconds) == (0, 1, 9.0)
    clock.advance(1)
    [message] = await queue.receive(wait_seconds=0)
    assert message.sent_at == at(sent_at)
    clock.advance(32)
    assert (await queue.stats()).oldest_age_seconds == 42.0
    await queue.close()


@pytest.mark.anyio
async def test_delivered_at_most_max_receives_times(db_path: Path, clock: FakeClock) -> None:
    queue = SqliteQueue(db_path, "jobs", max_receives=2, clock=clock)
    await queue.send("poison", attributes={"a": "1"})
    counts = []
    for _ in range(4):
        for message in await queue.receive(wait_seconds=0, visibility_timeout=5):
            counts.append(message.receive_count)
        clock.advance(5)
    assert counts == [1, 2]
    [dead] = await queue.dead_letters()
    assert (dead.body, dead.receive_count, dict(dead.attributes)) == ("poison", 2, {"a": "1"})
    # Moved by the third receive, 10 s after sending.
    assert (dead.sent_at, dead.dead_at) == (at(clock.now - 20), at(clock.now - 10))
    stats = await queue.stats()
    assert (stats.visible, stats.in_flight, stats.dead_letters) == (0, 0, 1)
    await queue.close()


@pytest.mark.anyio
async def test_a_batch_skips_exhausted_messages_and_still_fills_up(
    db_path: Path, clock: FakeClock
) -> None:
    queue = SqliteQueue(db_path, "jobs", max_receives=1, clock=clock)
    for i in range(5):
        await queue.send(f"old{i}")
    assert len(await queue.receive(wait_seconds=0, visibility_timeout=1)) == 5
    clock.advance(1)
    for i in range(12):
        await queue.send(f"new{i}")
    batch = await queue.receive(max_messages=10, wait_seconds=0)
    assert [m.body for m in batch] == [f"new{i}" for i in range(10)]
    assert len(await queue.dead_letters()) == 5
    await queue.close()


@pytest.mark.anyio
async def test_stale_receipt_of_a_dead_message_is_ignored(db_path: Path, clock: FakeClock) -> None:
    queue = SqliteQueue(db_path, "jobs", max_receives=1, clock=clock)
    await queue.send("poison")
    [message] = await queue.receive(wait_seconds=0, visibility_timeout=1)
    clock.advance(1)
    assert await queue.receive(wait_seconds=0) == []
    await queue.delete(message.receipt)
    await queue.change_visibility(message.receipt, 0)
    assert len(await queue.dead_letters()) == 1
    await queue.close()


@pytest.mark.anyio
async def test_delivery_order_is_by_visibility_then_sending(
    db_path: Path, clock: FakeClock
) -> None:
    queue = SqliteQueue(db_path, "jobs", clock=clock)
    for body in ("a", "b", "c"):
        await queue.send(body)
        clock.advance(0.001)
    [a] = await queue.receive(max_messages=1, wait_seconds=0)
    await queue.change_visibility(a.receipt, 0)  # visible again, now behind b and c
    assert [m.body for m in await queue.receive(wait_seconds=0)] == ["b", "c", "a"]
    await queue.close()


@pytest.mark.anyio
async def test_dead_letters_are_listed_and_redriven_oldest_first(
    db_path: Path, clock: FakeClock
) -> None:
    queue = SqliteQueue(db_path, "jobs", max_receives=1, clock=clock)
    ids = []
    for body in ("first", "second", "third"):
        ids.append(await queue.send(body))
        assert len(await queue.receive(wait_seconds=0, visibility_timeout=1)) == 1
        clock.advance(1)
        assert await queue.receive(wait_seconds=0) == []  # dies here
    assert [d.body for d in await queue.dead_letters(limit=2)] == ["first", "second"]
    assert await queue.redrive(limit=2) == 2
    assert [d.body for d in await queue.dead_letters()] == ["third"]
    batch = await queue.receive(wait_seconds=0)
    # Redriven messages keep their id and sending time; their receive count starts over.
    assert [(m.message_id, m.receive_count) for m in batch] == [(ids[0], 1), (ids[1], 1)]
    await queue.close()


@pytest.mark.anyio
async def test_negative_times_are_treated_as_zero(db_path: Path, clock: FakeClock) -> None:
    queue = SqliteQueue(db_path, "jobs", clock=clock)
    await queue.send("now", delay_seconds=-5)
    [message] = await queue.receive(wait_seconds=-1, visibility_timeout=30)
    await queue.change_visibility(message.receipt, -3)
    assert len(await queue.receive(wait_seconds=0)) == 1
    await queue.close()


def test_invalid_settings_are_rejected(db_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteQueue(db_path, "")
    with pytest.raises(ValueError):
        SqliteQueue(db_path, "jobs", max_receives=0)


# -- the file -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_queues_sharing_a_file_are_isolated(db_path: Path, clock: FakeClock) -> None:
    jobs = SqliteQueue(db_path, "jobs", max_receives=1, clock=clock)
    events = SqliteQueue(db_path, "events", max_receives=1, clock=clock)
    await jobs.send("job")
    await events.send("event")
    await jobs.receive(wait_seconds=0, visibility_timeout=1)
    clock.advance(1)
    await jobs.receive(wait_seconds=0)  # the job dies
    assert (await events.stats()).dead_letters == 0
    assert await events.redrive() == 0
    await jobs.purge()
    assert [m.body for m in await events.receive(wait_seconds=0)] == ["event"]
    assert (await jobs.stats()).dead_letters == 1
    await jobs.close()
    await events.close()


@pytest.mark.anyio
async def test_messages_survive_reopening(db_path: Path) -> None:
    queue = SqliteQueue(db_path, "jobs")
    message_id = await queue.send("durable", attributes={"k": "v"})
    await queue.close()
    reopened = SqliteQueue(db_path, "jobs")
    [message] = await reopened.receive(wait_seconds=0)
    assert (message.message_id, dict(message.attributes)) == (message_id, {"k": "v"})
    await reopened.close()


@pytest.mark.anyio
async def test_file_and_directory_are_created_in_wal_mode(db_path: Path) -> None:
    queue = SqliteQueue(db_path, "jobs")
    await queue.check()
    assert db_path.exists()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    await queue.close()


@pytest.mark.anyio
async def test_long_poll_holds_no_lock_while_waiting(db_path: Path) -> None:
    queue = SqliteQueue(db_path, "jobs", poll_interval=0.01)
    await queue.check()
    # Long enough that the poll is still waiting when the message comes, however busy the machine.
    waiting = asyncio.create_task(queue.receive(wait_seconds=10))
    raw = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    for _ in range(20):  # across the waiting receive's polls, every 10 ms
        raw.execute("BEGIN IMMEDIATE")  # would raise "database is locked" if a writer held it
        raw.execute("ROLLBACK")
        await asyncio.sleep(0.01)
    raw.close()
    await queue.send("hello")
    assert [m.body for m in await waiting] == ["hello"]
    await queue.close()


@pytest.mark.anyio
async def test_unusable_path_raises_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    for path in (blocker / "queues.sqlite3", tmp_path):  # a file as parent; a directory as file
        queue = SqliteQueue(path, "jobs")
        with pytest.raises(BackendUnavailable) as info:
            await queue.check()
        message = str(info.value)
        assert "\n" not in message
        assert str(path) in message
        assert "STOCKDAY_DATA_DIR" in message
        with pytest.raises(BackendUnavailable):
            await queue.send("x")
        await queue.close()


def check_fails(directory: Path) -> None:
    with pytest.raises(BackendUnavailable):
        asyncio.run(SqliteQueue(directory / "queues.sqlite3", "jobs").check())


def test_read_only_file_fails_check(db_path: Path) -> None:
    async def create() -> None:
        queue = SqliteQueue(db_path, "jobs")
        await queue.check()
        await queue.close()

    asyncio.run(create())
    run_read_only(db_path.parent, check_fails)


# -- several handles and processes ----------------------------------------------------------


@pytest.mark.anyio
async def test_two_instances_on_one_file_share_the_queue(db_path: Path) -> None:
    a = SqliteQueue(db_path, "jobs", poll_interval=0.005)
    b = SqliteQueue(db_path, "jobs", poll_interval=0.005)
    sent = {await a.send(f"m{i}") for i in range(60)}
    seen: list[str] = []

    async def drain(queue: SqliteQueue) -> None:
        while batch := await queue.receive(max_messages=2, wait_seconds=0.1):
            for message in batch:
                seen.append(message.message_id)
                await queue.delete(message.receipt)
            await asyncio.sleep(0)

    await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    assert sorted(seen) == sorted(sent)
    await a.close()
    await b.close()


def _drain_in_process(path: str, start: Any, results: Any) -> None:
    async def drain() -> list[str]:
        queue = SqliteQueue(Path(path), "jobs", poll_interval=0.005)
        await queue.check()  # open the file before the race starts
        start.wait()
        got: list[str] = []
        while batch := await queue.receive(max_messages=2, wait_seconds=0.3, visibility_timeout=60):
            for message in batch:
                got.append(message.message_id)
                await queue.delete(message.receipt)
            await asyncio.sleep(0.001)  # a little work, so that the processes interleave
        await queue.close()
        return got

    results.put(asyncio.run(drain()))


def _send_in_process(path: str, start: Any, count: int) -> None:
    async def send() -> None:
        queue = SqliteQueue(Path(path), "jobs")
        for i in range(count):
            await queue.send(f"m{i}")
        await queue.close()

    start.wait()  # all processes create the (missing) file at the same moment
    asyncio.run(send())


def test_processes_creating_the_file_at_once(db_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    start = ctx.Barrier(workers)
    processes = [
        ctx.Process(target=_send_in_process, args=(str(db_path), start, 25)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * workers
    stats = asyncio.run(_stats(db_path))
    assert stats.visible == workers * 25


async def _stats(db_path: Path) -> Any:
    queue = SqliteQueue(db_path, "jobs")
    try:
        return await queue.stats()
    finally:
        await queue.close()


def test_two_processes_never_receive_the_same_message(db_path: Path) -> None:
    async def fill() -> set[str]:
        queue = SqliteQueue(db_path, "jobs")
        ids = {await queue.send(f"m{i}") for i in range(500)}
        await queue.close()
        return ids

    sent = asyncio.run(fill())
    ctx = multiprocessing.get_context("spawn")
    workers = 3
    start = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_drain_in_process, args=(str(db_path), start, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    received = [results.get(timeout=30) for _ in range(workers)]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * workers
    counts = Counter(m for got in received for m in got)
    assert [m for m, n in counts.items() if n > 1] == []
    assert set(counts) == sent
    assert all(received), "every process should have taken part"

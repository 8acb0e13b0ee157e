"""The MessageQueue contract, run against every adapter.

Only real, short times are used (an SQS queue or an emulator cannot follow an injected clock):
visibility timeouts and waits are whole seconds, as SQS accepts, and anything eventual is polled
with a deadline. Stats are polled too, since SQS reports them approximately.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stockday.aws.clients import make_client
from stockday.aws.provision import create_queue
from stockday.contracts.messages import LogoRequested, encode
from stockday.queues.base import MessageQueue, QueueStats, ReceivedMessage
from stockday.queues.sqlite import SqliteQueue
from stockday.queues.sqs import SqsQueue
from tests.support.aws import aws_target

QueueFactory = Callable[[Path, str, int], Awaitable[MessageQueue]]
"""(tmp_path, queue name, max_receives) -> a new handle on that queue.

Called twice with the same name it must return two handles on ONE queue (as two processes
would hold), creating the queue and its dead-letter queue on first use.
"""

OpenQueue = Callable[..., Awaitable[MessageQueue]]


async def make_sqlite_queue(tmp_path: Path, name: str, max_receives: int) -> MessageQueue:
    return SqliteQueue(
        tmp_path / "queues.sqlite3", name, max_receives=max_receives, poll_interval=0.02
    )


async def make_sqs_queue(tmp_path: Path, name: str, max_receives: int) -> MessageQueue:
    """A handle on SQS queue ``name`` on the session's moto server, or the endpoint
    STOCKDAY_TEST_SQS_ENDPOINT names (create_queue is idempotent)."""
    config = aws_target("sqs").config
    client = make_client("sqs", config)
    try:
        await asyncio.to_thread(create_queue, client, name, max_receives=max_receives)
    finally:
        client.close()
    return SqsQueue(config, name, max_receives=max_receives)


# AWS adapters join here; the tests below stay unchanged.
QUEUE_FACTORIES = [
    pytest.param(make_sqlite_queue, id="sqlite"),
    pytest.param(make_sqs_queue, id="sqs"),
]

MAX_RECEIVES = 3
LONG = 30  # a visibility timeout no test outlives
DEADLINE = 10.0  # upper bound for anything eventual

pytestmark = pytest.mark.anyio


@pytest.fixture(params=QUEUE_FACTORIES)
async def open_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenQueue]:
    """Open handles on this test's queue (or, given a name suffix, on a sibling queue)."""
    factory: QueueFactory = request.param
    base = f"contract-{uuid.uuid4().hex[:12]}"
    handles: list[MessageQueue] = []

    async def open_(suffix: str = "") -> MessageQueue:
        handle = await factory(tmp_path, base + suffix, MAX_RECEIVES)
        handles.append(handle)
        return handle

    yield open_
    for handle in handles:
        await handle.close()


@pytest.fixture
async def queue(open_queue: OpenQueue) -> MessageQueue:
    return await open_queue()


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, timeout: float = DEADLINE, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.05)


async def stats_become(queue: MessageQueue, **expected: float) -> QueueStats:
    last: list[QueueStats] = []

    async def matches() -> bool:
        last[:] = [await queue.stats()]
        return all(getattr(last[0], k) == v for k, v in expected.items())

    await eventually(matches, what=f"stats {expected} (last {last})")
    return last[0]


async def receive_one(
    queue: MessageQueue, *, visibility_timeout: float = LONG, timeout: float = DEADLINE
) -> ReceivedMessage:
    """Long-poll until one message arrives (or fail at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = await queue.receive(
            max_messages=1, wait_seconds=1, visibility_timeout=visibility_timeout
        )
        if batch:
            [message] = batch
            return message
    pytest.fail(f"no message within {timeout} s")


async def receive_n(queue: MessageQueue, n: int, *, batch: int = 10) -> list[ReceivedMessage]:
    """Long-poll until ``n`` messages arrived; every batch respects the 10-message cap."""
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < n and time.monotonic() < deadline:
        received = await queue.receive(max_messages=batch, wait_seconds=1, visibility_timeout=LONG)
        assert len(received) <= min(batch, 10)
        got.extend(received)
    assert len(got) == n
    return got


async def dead_letter(queue: MessageQueue, body: str) -> str:
    """Send a message and fail it MAX_RECEIVES times (releasing it at once) so it dies."""
    message_id = await queue.send(body)
    await fail_until_dead(queue, body)
    return message_id


async def fail_until_dead(queue: MessageQueue, body: str) -> None:
    """Receive the only message and fail it MAX_RECEIVES times, until it is a dead letter.

    Found by its body: a redriven message has a new id on SQS.
    """
    for attempt in range(1, MAX_RECEIVES + 1):
        message = await receive_one(queue)
        assert (message.body, message.receive_count) == (body, attempt)
        await queue.change_visibility(message.receipt, 0)

    async def is_dead() -> bool:
        # A receive is what moves an exhausted message to the dead letters, as in SQS.
        batch = await queue.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG)
        assert batch == [], "delivered more than max_receives times"
        return any(d.body == body for d in await queue.dead_letters())

    await eventually(is_dead, what=f"{body!r} in the dead letters")


# -- sending and receiving ------------------------------------------------------------------


async def test_round_trip_with_attributes(queue: MessageQueue) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    body = '{"symbol": "AAPL", "note": "héllo ✓"}'
    message_id = await queue.send(body, attributes={"kind": "logo-requested", "v": "1"})
    message = await receive_one(queue)
    assert message.message_id == message_id
    assert message.body == body
    assert dict(message.attributes) == {"kind": "logo-requested", "v": "1"}
    assert message.receive_count == 1
    assert message.receipt
    assert before <= message.sent_at <= datetime.now(UTC) + timedelta(seconds=5)
    await queue.delete(message.receipt)
    await stats_become(queue, visible=0, in_flight=0)


async def test_message_without_attributes_has_none(queue: MessageQueue) -> None:
    await queue.send("plain")
    message = await receive_one(queue)
    assert (message.body, dict(message.attributes)) == ("plain", {})


async def test_send_returns_distinct_ids(queue: MessageQueue) -> None:
    ids = [await queue.send(f"m{i}") for i in range(5)]
    assert len(set(ids)) == 5
    assert {m.message_id for m in await receive_n(queue, 5)} == set(ids)


async def test_batches_hold_at_most_ten_messages(queue: MessageQueue) -> None:
    sent = {await queue.send(f"m{i}"): f"m{i}" for i in range(12)}
    got = await receive_n(queue, 12, batch=10)
    assert {m.message_id: m.body for m in got} == sent
    assert len({m.receipt for m in got}) == 12


async def test_max_messages_above_ten_is_capped(queue: MessageQueue) -> None:
    for i in range(12):
        await queue.send(f"m{i}")
    await stats_become(queue, visible=12)
    batch = await queue.receive(max_messages=50, wait_seconds=1, visibility_timeout=LONG)
    assert 1 <= len(batch) <= 10


async def test_max_messages_one_returns_one(queue: MessageQueue) -> None:
    for i in range(3):
        await queue.send(f"m{i}")
    await stats_become(queue, visible=3)
    batch = await queue.receive(max_messages=1, wait_seconds=1, visibility_timeout=LONG)
    assert len(batch) == 1


async def test_empty_queue_long_poll_returns_nothing_after_the_wait(queue: MessageQueue) -> None:
    started = time.monotonic()
    assert await queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=LONG) == []
    # It waited: a slower machine only waits longer, so this bound cannot flake.
    assert time.monotonic() - started >= 0.8


async def test_zero_wait_on_an_empty_queue_returns_at_once(queue: MessageQueue) -> None:
    # A long poll that does not end is what would fail here, not a slow machine.
    receive = queue.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG)
    assert await asyncio.wait_for(receive, DEADLINE) == []


async def test_long_poll_returns_as_soon_as_a_message_arrives(open_queue: OpenQueue) -> None:
    consumer, producer = await open_queue(), await open_queue()
    # A long poll of twice the deadline: ending before the deadline, it ended on the message.
    waiting = asyncio.create_task(
        consumer.receive(max_messages=10, wait_seconds=2 * DEADLINE, visibility_timeout=LONG)
    )
    await producer.send("wake up")
    batch = await asyncio.wait_for(waiting, DEADLINE)
    assert [m.body for m in batch] == ["wake up"]


async def test_delayed_message_is_hidden_until_the_delay_passes(queue: MessageQueue) -> None:
    started = time.monotonic()
    await queue.send("later", delay_seconds=1)
    assert await queue.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG) == []
    stats = await queue.stats()
    assert (stats.visible, stats.in_flight) == (0, 1)  # a delayed message counts as in flight
    message = await receive_one(queue)
    assert message.body == "later"
    assert time.monotonic() - started >= 0.9


async def test_queues_are_isolated(open_queue: OpenQueue) -> None:
    jobs, events = await open_queue("-jobs"), await open_queue("-events")
    await jobs.send("job")
    await events.send("event")
    assert (await receive_one(jobs)).body == "job"
    assert (await receive_one(events)).body == "event"
    assert await jobs.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG) == []


# -- visibility, acknowledgement and receipts ------------------------------------------------


async def test_unacknowledged_message_is_redelivered_after_its_visibility_timeout(
    queue: MessageQueue,
) -> None:
    await queue.send("work")
    first = await receive_one(queue, visibility_timeout=1)
    received_at = time.monotonic()
    assert await queue.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG) == []
    second = await receive_one(queue)
    assert time.monotonic() - received_at >= 0.9
    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.receipt != first.receipt


async def test_delete_acknowledges(queue: MessageQueue) -> None:
    await queue.send("work")
    message = await receive_one(queue)
    await queue.delete(message.receipt)
    await queue.change_visibility(message.receipt, 0)  # ignored: the message is gone
    assert await queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=LONG) == []
    await stats_become(queue, visible=0, in_flight=0)


async def test_unknown_receipts_are_ignored(queue: MessageQueue) -> None:
    await queue.delete("no-such-receipt")
    await queue.change_visibility("no-such-receipt", 0)


async def test_stale_receipt_neither_deletes_nor_releases_the_redelivered_message(
    queue: MessageQueue,
) -> None:
    await queue.send("work")
    first = await receive_one(queue)
    await queue.change_visibility(first.receipt, 0)
    second = await receive_one(queue)
    assert (second.message_id, second.receive_count) == (first.message_id, 2)

    await queue.delete(first.receipt)  # stale: ignored
    await queue.change_visibility(first.receipt, 0)  # stale: ignored, still invisible
    assert await queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=LONG) == []
    stats = await stats_become(queue, in_flight=1)
    assert stats.visible == 0

    await queue.delete(second.receipt)
    await stats_become(queue, visible=0, in_flight=0)


async def test_change_visibility_extends_the_timeout(queue: MessageQueue) -> None:
    await queue.send("slow work")
    message = await receive_one(queue, visibility_timeout=1)
    await queue.change_visibility(message.receipt, 4)
    # Without the extension it would be back after 1 s.
    assert await queue.receive(max_messages=10, wait_seconds=2, visibility_timeout=LONG) == []
    await queue.change_visibility(message.receipt, 0)
    again = await receive_one(queue)
    assert (again.message_id, again.receive_count) == (message.message_id, 2)


async def test_change_visibility_zero_releases_at_once(queue: MessageQueue) -> None:
    await queue.send("work")
    message = await receive_one(queue)
    await queue.change_visibility(message.receipt, 0)
    # Long before the LONG visibility timeout would have let it back: receive_one's deadline.
    again = await receive_one(queue)
    assert again.message_id == message.message_id


async def test_stats_count_visible_in_flight_and_age(queue: MessageQueue) -> None:
    empty = await stats_become(queue, visible=0, in_flight=0, dead_letters=0)
    assert empty.oldest_age_seconds == 0
    for body in ("a", "b", "c"):
        await queue.send(body)
    await stats_become(queue, visible=3)
    await receive_one(queue)
    stats = await stats_become(queue, visible=2, in_flight=1)
    assert 0 <= stats.oldest_age_seconds < 60
    await asyncio.sleep(1.1)
    assert (await queue.stats()).oldest_age_seconds >= 1.0


async def test_purge_removes_visible_and_in_flight_messages(queue: MessageQueue) -> None:
    for body in ("a", "b", "c"):
        await queue.send(body)
    taken = await receive_one(queue)
    await queue.purge()
    await stats_become(queue, visible=0, in_flight=0)
    assert await queue.receive(max_messages=10, wait_seconds=0, visibility_timeout=LONG) == []
    await queue.delete(taken.receipt)  # the purged message's receipt is now unknown: ignored


# -- dead letters ---------------------------------------------------------------------------


async def test_message_goes_to_dead_letters_after_max_receives_while_others_flow(
    queue: MessageQueue,
) -> None:
    poison_id = await queue.send("poison", attributes={"kind": "bad"})
    first_sent_at: datetime | None = None
    for attempt in range(1, MAX_RECEIVES + 1):
        message = await receive_one(queue)
        assert (message.message_id, message.receive_count) == (poison_id, attempt)
        first_sent_at = first_sent_at or message.sent_at
        await queue.change_visibility(message.receipt, 0)  # the handler failed

    good_id = await queue.send("good")
    good = await receive_one(queue)
    assert good.message_id == good_id  # the poison message is not delivered a 4th time
    await queue.delete(good.receipt)
    assert await queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=LONG) == []

    stats = await stats_become(queue, dead_letters=1)
    assert (stats.visible, stats.in_flight) == (0, 0)
    [dead] = await queue.dead_letters()
    assert (dead.message_id, dead.body, dict(dead.attributes)) == (
        poison_id,
        "poison",
        {"kind": "bad"},
    )
    assert dead.receive_count >= MAX_RECEIVES
    assert first_sent_at is not None
    assert abs(dead.sent_at - first_sent_at) < timedelta(seconds=1)
    assert dead.sent_at <= dead.dead_at <= datetime.now(UTC) + timedelta(seconds=5)


async def test_peeking_at_dead_letters_keeps_them(queue: MessageQueue) -> None:
    await dead_letter(queue, "one")
    await dead_letter(queue, "two")
    assert len(await queue.dead_letters(limit=1)) == 1
    assert sorted(d.body for d in await queue.dead_letters()) == ["one", "two"]
    assert sorted(d.body for d in await queue.dead_letters(limit=100)) == ["one", "two"]
    await stats_become(queue, dead_letters=2)


async def test_redrive_brings_dead_letters_back_with_a_fresh_receive_count(
    queue: MessageQueue,
) -> None:
    await dead_letter(queue, "poison")
    assert await queue.redrive() == 1
    await stats_become(queue, dead_letters=0)
    assert await queue.dead_letters() == []
    message = await receive_one(queue)
    assert (message.body, message.receive_count) == ("poison", 1)
    await queue.delete(message.receipt)
    assert await queue.redrive() == 0


async def test_redrive_respects_its_limit(queue: MessageQueue) -> None:
    await dead_letter(queue, "one")
    await dead_letter(queue, "two")
    assert await queue.redrive(limit=1) == 1
    assert len(await queue.dead_letters()) == 1
    assert await queue.redrive(limit=None) == 1
    bodies = sorted(m.body for m in await receive_n(queue, 2))
    assert bodies == ["one", "two"]


async def test_each_dead_letter_says_why_it_died(queue: MessageQueue) -> None:
    job = LogoRequested(symbol="POISON", upload_id="f" * 32, upload_key="uploads/" + "f" * 32)
    job_id = await dead_letter(queue, encode(job))
    await dead_letter(queue, "not json")
    reasons = {d.body: d.reason for d in await queue.dead_letters()}
    assert reasons["not json"].startswith("malformed: body is not JSON")
    # However often a peek counted a receive (SQS does), it failed max_receives times.
    assert reasons[encode(job)] == (
        f"logo.requested for POISON: handler failed {MAX_RECEIVES} times "
        f"(see the consumer logs for message {job_id})"
    )


async def test_redriven_dead_letters_are_delivered_and_can_die_again(
    queue: MessageQueue,
) -> None:
    await dead_letter(queue, "poison")
    assert await queue.redrive() == 1
    await fail_until_dead(queue, "poison")
    [dead] = await queue.dead_letters()
    assert dead.body == "poison"
    assert dead.reason.startswith("malformed: body is not JSON")


async def test_purge_keeps_the_dead_letters(queue: MessageQueue) -> None:
    await dead_letter(queue, "poison")
    await queue.send("alive")
    await queue.purge()
    await stats_become(queue, visible=0, in_flight=0, dead_letters=1)
    assert [d.body for d in await queue.dead_letters()] == ["poison"]


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_receivers_never_get_the_same_message(open_queue: OpenQueue) -> None:
    handles = [await open_queue(), await open_queue()]
    sent = {await handles[0].send(f"m{i}") for i in range(40)}
    seen: list[str] = []

    async def receiver(handle: MessageQueue) -> None:
        deadline = time.monotonic() + DEADLINE
        while len(seen) < len(sent) and time.monotonic() < deadline:
            batch = await handle.receive(max_messages=3, wait_seconds=1, visibility_timeout=LONG)
            for message in batch:
                seen.append(message.message_id)
                await handle.delete(message.receipt)

    await asyncio.gather(*(receiver(h) for h in handles for _ in range(3)))
    duplicates = [m for m, n in Counter(seen).items() if n > 1]
    assert duplicates == []
    assert set(seen) == sent


async def test_check_passes_on_a_usable_queue(queue: MessageQueue) -> None:
    await queue.check()

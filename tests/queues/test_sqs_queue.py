"""SqsQueue specifics against a moto server: provisioning, wire format, failures."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from typing import TYPE_CHECKING

import pytest

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_queue
from stockday.aws.schema import DEAD_LETTER_RETENTION_SECONDS
from stockday.domain.errors import BackendUnavailable
from stockday.queues.sqs import SqsQueue
from stockday.queues.sqs_messages import Receipts
from tests.support.aws import unreachable_config

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

pytestmark = pytest.mark.anyio

SETTING = "STOCKDAY_LOGO_EVENTS_QUEUE"


@pytest.fixture
def sqs(config: AwsConfig) -> Iterator[SQSClient]:
    with closing(make_client("sqs", config)) as client:
        yield client


@pytest.fixture
def name() -> str:
    return f"sqs-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def queue(config: AwsConfig, sqs: SQSClient, name: str) -> AsyncIterator[SqsQueue]:
    create_queue(sqs, name, max_receives=2)
    handle = SqsQueue(config, name, max_receives=2, setting=SETTING)
    yield handle
    await handle.close()


def attributes_of(sqs: SQSClient, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    response = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return {str(key): value for key, value in response["Attributes"].items()}


# -- provisioning ---------------------------------------------------------------------------


def test_create_queue_sets_the_redrive_policy_and_the_dlq_retention(
    sqs: SQSClient, name: str
) -> None:
    url = create_queue(sqs, name, max_receives=4, visibility_seconds=45)
    assert url.endswith("/" + name)
    main, dead = attributes_of(sqs, name), attributes_of(sqs, name + "-dlq")
    policy = json.loads(main["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dead["QueueArn"]
    assert int(policy["maxReceiveCount"]) == 4
    assert main["VisibilityTimeout"] == "45"
    assert int(dead["MessageRetentionPeriod"]) == DEAD_LETTER_RETENTION_SECONDS == 14 * 24 * 3600


def test_create_queue_is_idempotent_and_updates_the_policy(sqs: SQSClient, name: str) -> None:
    first = create_queue(sqs, name, max_receives=4)
    again = create_queue(sqs, name, max_receives=6)
    assert first == again
    policy = json.loads(attributes_of(sqs, name)["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 6


# -- check ----------------------------------------------------------------------------------


async def test_check_names_a_missing_queue_and_its_setting(config: AwsConfig, name: str) -> None:
    queue = SqsQueue(config, name, max_receives=3, setting=SETTING)
    try:
        with pytest.raises(BackendUnavailable) as failure:
            await queue.check()
    finally:
        await queue.close()
    message = str(failure.value)
    assert repr(name) in message
    assert SETTING in message
    assert "does not exist" in message
    assert "\n" not in message


async def test_check_names_a_missing_dead_letter_queue(
    config: AwsConfig, sqs: SQSClient, name: str
) -> None:
    sqs.create_queue(QueueName=name)
    queue = SqsQueue(config, name, max_receives=3, setting=SETTING)
    try:
        with pytest.raises(BackendUnavailable, match=f"'{name}-dlq'.*does not exist"):
            await queue.check()
    finally:
        await queue.close()


async def test_check_refuses_a_queue_without_redrive_policy(
    config: AwsConfig, sqs: SQSClient, name: str
) -> None:
    sqs.create_queue(QueueName=name)
    sqs.create_queue(QueueName=name + "-dlq")
    queue = SqsQueue(config, name, max_receives=3, setting=SETTING)
    try:
        with pytest.raises(BackendUnavailable, match="no redrive policy") as failure:
            await queue.check()
    finally:
        await queue.close()
    assert SETTING in str(failure.value)


async def test_every_method_reports_a_missing_queue_as_unavailable(
    config: AwsConfig, name: str
) -> None:
    queue = SqsQueue(config, name, max_receives=3, setting=SETTING)
    try:
        for call in (
            lambda: queue.send("x"),
            lambda: queue.receive(wait_seconds=0),
            queue.stats,
            queue.dead_letters,
            queue.redrive,
            queue.purge,
        ):
            with pytest.raises(BackendUnavailable, match=name):
                await call()
    finally:
        await queue.close()


async def test_an_unreachable_endpoint_is_unavailable_quickly(name: str) -> None:
    queue = SqsQueue(
        unreachable_config(timeout_seconds=1, max_attempts=2),
        name,
        max_receives=3,
        setting=SETTING,
    )
    try:
        for call in (queue.check, lambda: queue.send("x"), lambda: queue.receive(wait_seconds=5)):
            with pytest.raises(BackendUnavailable, match="cannot reach") as failure:
                await call()
            assert SETTING in str(failure.value)
    finally:
        await queue.close()


# -- wire format ----------------------------------------------------------------------------


async def test_attributes_travel_as_string_message_attributes(
    queue: SqsQueue, sqs: SQSClient, name: str
) -> None:
    body = '{"type": "logo-requested", "version": 1}'
    await queue.send(body, attributes={"type": "logo-requested", "traceparent": "00-ab-cd-01"})
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    [raw] = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1, VisibilityTimeout=0
    )["Messages"]
    assert raw["Body"] == body
    assert raw["MessageAttributes"] == {
        "type": {"DataType": "String", "StringValue": "logo-requested"},
        "traceparent": {"DataType": "String", "StringValue": "00-ab-cd-01"},
    }


async def test_message_attributes_sent_by_others_are_received(
    queue: SqsQueue, sqs: SQSClient, name: str
) -> None:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody="{}",
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}},
    )
    [message] = await queue.receive(wait_seconds=1)
    assert dict(message.attributes) == {"tenant": "acme"}
    assert message.receive_count == 1


async def test_attributes_sqs_cannot_carry_are_refused_before_sending(queue: SqsQueue) -> None:
    with pytest.raises(ValueError, match="at most 10"):
        await queue.send("x", attributes={f"a{i}": "v" for i in range(11)})
    with pytest.raises(ValueError, match="empty"):
        await queue.send("x", attributes={"blank": ""})
    for bad in ("has space", "AWS.reserved", ".leading", "double..dot"):
        with pytest.raises(ValueError, match="not a valid SQS message attribute name"):
            await queue.send("x", attributes={bad: "v"})
    assert (await queue.stats()).visible == 0


async def test_redrive_keeps_body_and_attributes(queue: SqsQueue) -> None:
    await queue.send("poison", attributes={"type": "logo-requested"})
    for _ in range(2):
        [message] = await queue.receive(wait_seconds=1)
        await queue.change_visibility(message.receipt, 0)
    assert await queue.receive(wait_seconds=0) == []  # moves it to the DLQ
    assert await queue.redrive() == 1
    [again] = await queue.receive(wait_seconds=1)
    assert (again.body, dict(again.attributes), again.receive_count) == (
        "poison",
        {"type": "logo-requested"},
        1,
    )


async def test_peeking_counts_as_a_receive_on_the_dead_letter_queue(queue: SqsQueue) -> None:
    await queue.send("poison")
    for _ in range(2):
        [message] = await queue.receive(wait_seconds=1)
        await queue.change_visibility(message.receipt, 0)
    assert await queue.receive(wait_seconds=0) == []
    [first] = await queue.dead_letters()
    [second] = await queue.dead_letters()
    assert first.message_id == second.message_id
    assert second.receive_count == first.receive_count + 1
    assert first.sent_at <= first.dead_at


async def test_a_second_purge_within_a_minute_still_empties_the_queue(queue: SqsQueue) -> None:
    await queue.send("a")
    await queue.purge()
    for body in ("b", "c", "d"):
        await queue.send(body)
    await queue.purge()  # SQS refuses a second PurgeQueue within 60 s
    assert (await queue.stats()).visible == 0
    assert await queue.receive(wait_seconds=0) == []


async def test_oldest_age_is_an_upper_bound_from_when_the_queue_was_last_seen_empty(
    queue: SqsQueue, config: AwsConfig, name: str
) -> None:
    assert (await queue.stats()).oldest_age_seconds == 0.0
    await queue.send("a")
    await asyncio.sleep(0.2)
    assert (await queue.stats()).oldest_age_seconds >= 0.2
    # A handle that never saw the queue empty can only say: no older than the queue.
    other = SqsQueue(config, name, max_receives=2)
    try:
        age = (await other.stats()).oldest_age_seconds
    finally:
        await other.close()
    assert 0.2 <= age < 60


# -- receipts ---------------------------------------------------------------------------------


def test_receipts_recognise_superseded_ones_and_forget_the_oldest_first() -> None:
    receipts = Receipts(capacity=2)
    receipts.issued("m1", "r1")
    receipts.issued("m1", "r2")  # m1 received again: r1 is superseded
    assert receipts.superseded("r1")
    assert not receipts.superseded("r2")

    receipts.issued("m2", "r3")  # full: r1, the oldest, is forgotten and left to SQS to judge
    assert not receipts.superseded("r1")
    assert len(receipts) == 2

    receipts.issued("m3", "r4")  # r2, m1's newest, is forgotten with m1's memory
    receipts.issued("m1", "r5")  # so a later receive of m1 starts afresh
    assert not receipts.superseded("r5")
    assert not receipts.superseded("r2")


def test_a_settled_receipt_is_forgotten() -> None:
    receipts = Receipts(capacity=10)
    receipts.issued("m1", "r1")
    receipts.issued("m1", "r2")
    receipts.settled("r2")
    assert not receipts.superseded("r2")
    assert receipts.superseded("r1")  # still older than the settled one
    assert len(receipts) == 1

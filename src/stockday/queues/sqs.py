"""SQS message queue: the port on an SQS standard queue and its dead-letter queue ``<name>-dlq``.

Most of the port is SQS itself: bodies are the JSON strings given, ``attributes`` travel as
String MessageAttributes, receives long-poll (whole seconds, at most 20) in batches of at most
10, and the queue's redrive policy (set by :func:`stockday.aws.provision.create_queue`) moves a
message that was received ``max_receives`` times to the dead-letter queue. Fractional seconds
are rounded up, so a visibility timeout is never shorter than asked for.

Where SQS has no matching operation the adapter says what it does instead:

- ``stats().oldest_age_seconds``: SQS reports no message ages (only CloudWatch's
  ApproximateAgeOfOldestMessage does) and a message cannot be looked at without receiving it,
  which would count towards its max receives. The adapter reports an upper bound instead: the
  time since this handle last saw the queue empty (every message now in the queue was sent after
  that), 0.0 while it is empty, and, before this handle has ever seen it empty, the queue's own
  age capped at its retention period. Like SQS's counts, it is approximate.
- ``dead_letters()`` and ``redrive()``: see :mod:`stockday.queues.sqs_dead_letters`.
- ``purge()`` is SQS's PurgeQueue, the one operation that also removes messages in flight;
  the dead-letter queue is a queue of its own and is kept. SQS allows one purge a minute per
  queue; a purge refused for that reason deletes what it can receive instead (messages in
  flight at that moment are left).
- Stale receipts: SQS ignores a delete with a receipt that was superseded by a later receive
  (documented for DeleteMessage). The moto emulator accepts any receipt a message ever had, so
  the adapter also remembers the receipts it handed out and drops a delete or a visibility change
  with a receipt it knows to be superseded; unknown or expired receipts that SQS rejects are
  ignored too.

boto3 is blocking: every call runs on the :class:`~stockday.aws.clients.AwsCalls` pool. Long
polls use their own client whose read timeout exceeds the longest wait; every other call keeps
the short configured timeout. Queue URLs are resolved with GetQueueUrl on first use and cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from stockday.aws.clients import AwsCalls, AwsConfig, describe_failure, error_code, make_client
from stockday.aws.schema import dead_letter_queue_name
from stockday.domain.errors import BackendUnavailable
from stockday.queues.base import DeadLetter, QueueStats, ReceivedMessage
from stockday.queues.sqs_dead_letters import SqsDeadLetters
from stockday.queues.sqs_messages import (
    MAX_BATCH,
    SYSTEM_ATTRIBUTES,
    Receipts,
    encode_attributes,
    received_message,
    whole_seconds,
)

if TYPE_CHECKING:
    from types_boto3_sqs.literals import QueueAttributeNameType
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        SendMessageRequestTypeDef,
    )

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("stockday.queues.sqs")

MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_SECONDS = 43_200
MAX_DELAY_SECONDS = 900
SQS_DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600
# Long enough to delete one batch a purge fell back to receiving.
DRAIN_VISIBILITY_SECONDS = 30
REMEMBERED_RECEIPTS = 10_000

# A queue's message counts: visible, in flight, delayed.
_COUNT_ATTRIBUTES: list[QueueAttributeNameType] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
_PURGE_IN_PROGRESS = {"AWS.SimpleQueueService.PurgeQueueInProgress", "PurgeQueueInProgress"}
_RECEIPT_REJECTED = {
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
}


class SqsQueue:
    """MessageQueue on an SQS standard queue; see the module docstring for the mapping."""

    def __init__(
        self,
        config: AwsConfig,
        name: str,
        *,
        max_receives: int,
        setting: str = "STOCKDAY_LOGO_JOBS_QUEUE",
        calls: AwsCalls | None = None,
    ) -> None:
        if not name:
            raise ValueError("queue name must not be empty")
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.name = name
        self.dead_letter_name = dead_letter_queue_name(name)
        self._config = config
        self._max_receives = max_receives
        self._setting = setting
        self._owns_calls = calls is None
        self._calls = calls if calls is not None else AwsCalls()
        # Made here, once (tens of milliseconds each, at startup), so that no call pays for it.
        self._client = make_client("sqs", config)
        # The read timeout must outlast the longest wait SQS may hold a poll open.
        self._poll_client = make_client(
            "sqs", config, read_timeout=MAX_WAIT_SECONDS + config.timeout_seconds + 5
        )
        self._urls: dict[str, str] = {}
        self._receipts = Receipts(REMEMBERED_RECEIPTS)
        self._seen_empty_at: float | None = None
        self._dead_letters = SqsDeadLetters(
            name=name,
            dead_letter_name=self.dead_letter_name,
            max_receives=max_receives,
            client=self._client,
            poll_client=self._poll_client,
            call=self._aws,
            url=self._url,
        )

    # -- the port ---------------------------------------------------------------------------

    async def send(
        self,
        body: str,
        *,
        attributes: Mapping[str, str] | None = None,
        delay_seconds: float = 0,
    ) -> str:
        """Enqueue a message, visible after ``delay_seconds`` (at most 900); return its id."""
        encoded = encode_attributes(attributes or {})
        client, url = self._client, await self._url(self.name)
        request: SendMessageRequestTypeDef = {
            "QueueUrl": url,
            "MessageBody": body,
            "DelaySeconds": whole_seconds(delay_seconds, MAX_DELAY_SECONDS),
        }
        if encoded:
            request["MessageAttributes"] = encoded
        response = await self._aws(self.name, client.send_message, **request)
        return response["MessageId"]

    async def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 1.0,
        visibility_timeout: float = 30.0,
    ) -> list[ReceivedMessage]:
        """Long-poll for up to ``max_messages`` (at most 10) for up to ``wait_seconds`` (<= 20)."""
        client, url = self._poll_client, await self._url(self.name)
        response = await self._aws(
            self.name,
            client.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
            WaitTimeSeconds=whole_seconds(wait_seconds, MAX_WAIT_SECONDS),
            VisibilityTimeout=whole_seconds(visibility_timeout, MAX_VISIBILITY_SECONDS),
            MessageSystemAttributeNames=SYSTEM_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        batch = [received_message(message) for message in response.get("Messages", [])]
        for message in batch:
            self._receipts.issued(message.message_id, message.receipt)
        return batch

    async def delete(self, receipt: str) -> None:
        """Acknowledge; a superseded, unknown or expired receipt is ignored."""
        if self._receipts.superseded(receipt):
            return
        client, url = self._client, await self._url(self.name)
        await self._receipt_call(client.delete_message, QueueUrl=url, ReceiptHandle=receipt)
        self._receipts.settled(receipt)

    async def change_visibility(self, receipt: str, seconds: float) -> None:
        """Make the message visible ``seconds`` (rounded up) from now; stale receipts ignored."""
        if self._receipts.superseded(receipt):
            return
        client, url = self._client, await self._url(self.name)
        await self._receipt_call(
            client.change_message_visibility,
            QueueUrl=url,
            ReceiptHandle=receipt,
            VisibilityTimeout=whole_seconds(seconds, MAX_VISIBILITY_SECONDS),
        )

    async def stats(self) -> QueueStats:
        """SQS's approximate counts; delayed messages count as in flight (not yet visible).

        ``oldest_age_seconds`` is an upper bound, explained in the module docstring.
        """
        main, dead = await asyncio.gather(
            self._attributes(
                self.name, [*_COUNT_ATTRIBUTES, "CreatedTimestamp", "MessageRetentionPeriod"]
            ),
            self._attributes(self.dead_letter_name, _COUNT_ATTRIBUTES),
        )
        now = time.time()
        visible = _count(main, "ApproximateNumberOfMessages")
        in_flight = _count(main, "ApproximateNumberOfMessagesNotVisible") + _count(
            main, "ApproximateNumberOfMessagesDelayed"
        )
        if visible + in_flight == 0:
            self._seen_empty_at = now
            oldest = 0.0
        elif self._seen_empty_at is not None:
            oldest = now - self._seen_empty_at
        else:
            # Never seen empty by this handle: no message is older than the queue, nor than its
            # retention period.
            created = float(main.get("CreatedTimestamp", now))
            retention = float(main.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_SECONDS))
            oldest = min(now - created, retention)
        return QueueStats(
            visible=visible,
            in_flight=in_flight,
            oldest_age_seconds=max(0.0, oldest),
            dead_letters=sum(_count(dead, key) for key in _COUNT_ATTRIBUTES),
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` dead letters, oldest sent first, leaving them in place."""
        return await self._dead_letters.dead_letters(limit=limit)

    async def redrive(self, *, limit: int | None = None) -> int:
        """Move up to ``limit`` (None: all) dead letters back to the queue; return how many."""
        return await self._dead_letters.redrive(limit=limit)

    async def purge(self) -> None:
        """Delete every message of the queue, in flight or not; the dead letters are kept."""
        client, url = self._client, await self._url(self.name)
        try:
            await self._calls.run(client.purge_queue, QueueUrl=url)
        except ClientError as exc:
            if error_code(exc) not in _PURGE_IN_PROGRESS:
                raise self._unavailable(exc, self.name) from exc
            log.warning("SQS queue %r was purged less than 60 s ago; deleting instead", self.name)
            await self._drain(url)
        except BotoCoreError as exc:
            raise self._unavailable(exc, self.name) from exc

    async def check(self) -> None:
        """Raise BackendUnavailable unless the queue and its dead-letter queue can be used."""
        main = await self._attributes(self.name, ["QueueArn", "RedrivePolicy"], fresh=True)
        dead = await self._attributes(self.dead_letter_name, ["QueueArn"], fresh=True)
        policy = _redrive_policy(main.get("RedrivePolicy"))
        if policy is None or policy.get("deadLetterTargetArn") != dead.get("QueueArn"):
            raise BackendUnavailable(
                f"SQS queue {self.name!r} unavailable: it has no redrive policy to "
                f"{self.dead_letter_name!r}, so failing messages would never be set aside; "
                f"create it with stockday.aws.provision.create_queue (set by {self._setting})"
            )
        configured = policy.get("maxReceiveCount")
        if str(configured) != str(self._max_receives):
            log.warning(
                "SQS queue %r dead-letters after %s receives, not %d as configured",
                self.name,
                configured,
                self._max_receives,
            )

    async def close(self) -> None:
        self._client.close()
        self._poll_client.close()
        if self._owns_calls:
            self._calls.close()

    # -- purge fallback -----------------------------------------------------------------------

    async def _drain(self, url: str) -> None:
        client = self._poll_client
        while True:
            # A long poll asks every SQS server, so an empty answer means empty.
            response = await self._aws(
                self.name,
                client.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=MAX_BATCH,
                WaitTimeSeconds=1,
                VisibilityTimeout=DRAIN_VISIBILITY_SECONDS,
            )
            messages = response.get("Messages", [])
            if not messages:
                return
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ]
            await self._aws(self.name, client.delete_message_batch, QueueUrl=url, Entries=entries)

    # -- plumbing ---------------------------------------------------------------------------

    async def _url(self, name: str, *, fresh: bool = False) -> str:
        if fresh or name not in self._urls:
            response = await self._aws(name, self._client.get_queue_url, QueueName=name)
            self._urls[name] = response["QueueUrl"]
        return self._urls[name]

    async def _attributes(
        self, name: str, keys: list[QueueAttributeNameType], *, fresh: bool = False
    ) -> dict[str, str]:
        client, url = self._client, await self._url(name, fresh=fresh)
        response = await self._aws(
            name, client.get_queue_attributes, QueueUrl=url, AttributeNames=keys
        )
        return {str(key): value for key, value in response.get("Attributes", {}).items()}

    async def _aws(self, name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one boto3 call; any AWS failure becomes BackendUnavailable naming queue ``name``."""
        resource = f"SQS queue {name!r}"
        return await self._calls.run_guarded(resource, self._setting, fn, *args, **kwargs)

    async def _receipt_call(
        self, fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """A call with a receipt: one that SQS rejects as unknown or stale is ignored."""
        try:
            await self._calls.run(fn, *args, **kwargs)
        except ClientError as exc:
            if not _receipt_rejected(exc):
                raise self._unavailable(exc, self.name) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc, self.name) from exc

    def _unavailable(self, exc: BaseException, name: str) -> BackendUnavailable:
        return BackendUnavailable(describe_failure(exc, f"SQS queue {name!r}", self._setting))


# -- conversions ----------------------------------------------------------------------------


def _count(attributes: Mapping[str, str], key: str) -> int:
    return int(attributes.get(key, "0"))


def _redrive_policy(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _receipt_rejected(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in _RECEIPT_REJECTED:
        return True
    # SQS answers an expired receipt with InvalidParameterValue about the ReceiptHandle.
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return code == "InvalidParameterValue" and "ReceiptHandle" in message

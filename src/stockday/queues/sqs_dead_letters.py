"""The dead-letter side of the SQS queue: peeking at ``<name>-dlq`` and redriving from it.

SQS has no matching operation for either, so:

- ``dead_letters()`` peeks by receiving from the dead-letter queue with a short visibility
  timeout and then releasing the messages at once. Each peek therefore adds one to a dead
  letter's receive count (harmless: the dead-letter queue has no redrive policy), and a peek
  running at the same time in another process sees only what that one is not holding. SQS
  records no time of dead-lettering, so ``dead_at`` is the message's
  ApproximateFirstReceiveTimestamp (its first delivery, on the source queue): no later than
  its death.
- ``redrive()`` receives dead letters, sends each to the queue as a new message (body and
  attributes kept, so it starts with a receive count of 0, a new id and a new sent time) and
  only then deletes it from the dead-letter queue: at least once, as everything else.
  SQS's own StartMessageMoveTask cannot move a given number of messages, which the port needs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from stockday.domain.errors import BackendUnavailable
from stockday.queues.base import DeadLetter, with_reason
from stockday.queues.sqs_messages import (
    MAX_BATCH,
    SYSTEM_ATTRIBUTES,
    decode_attributes,
    message_timestamp,
)

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

P = ParamSpec("P")
T = TypeVar("T")

# The queue's own logger: dead-letter warnings belong to the queue they concern.
log = logging.getLogger("stockday.queues.sqs")

# Long enough for one peek or one redrive round; a crash leaves them hidden no longer than this.
PEEK_VISIBILITY_SECONDS = 30
REDRIVE_VISIBILITY_SECONDS = 60
# SendMessageBatch limits the whole request to what one message may hold.
MAX_BATCH_BYTES = 256 * 1024


class QueueCall(Protocol):
    """One boto3 call on the pool; an AWS failure raises BackendUnavailable naming ``name``."""

    def __call__(
        self, name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...


class SqsDeadLetters:
    """Peek at and redrive the dead letters of queue ``name``; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        dead_letter_name: str,
        max_receives: int,
        client: SQSClient,
        poll_client: SQSClient,
        call: QueueCall,
        url: Callable[[str], Awaitable[str]],
    ) -> None:
        self.name = name
        self.dead_letter_name = dead_letter_name
        self._max_receives = max_receives
        self._client = client
        self._poll_client = poll_client
        self._aws = call
        self._url = url

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` dead letters, oldest sent first, leaving them in place.

        Each peek adds one to their receive counts; see the module docstring.
        """
        if limit <= 0:
            return []
        expected = await self._visible_dead_letters()
        found: dict[str, MessageTypeDef] = {}
        held: list[str] = []
        try:
            while len(found) < limit:
                batch = await self._receive_dead_letters(
                    min(MAX_BATCH, limit - len(found)),
                    # Long-poll (SQS then asks every server) only while more are expected, so
                    # that the last round on an exhausted queue costs no waiting.
                    wait=len(found) < expected,
                    visibility=PEEK_VISIBILITY_SECONDS,
                )
                if not batch:
                    break
                for message in batch:
                    held.append(message["ReceiptHandle"])
                    found.setdefault(message["MessageId"], message)
        finally:
            await self._release_dead_letters(held)
        letters = sorted((_dead_letter(m) for m in found.values()), key=lambda d: d.sent_at)
        return [with_reason(letter, self._max_receives) for letter in letters[:limit]]

    async def redrive(self, *, limit: int | None = None) -> int:
        """Move up to ``limit`` (None: all) dead letters back to the queue; return how many."""
        if limit is not None and limit <= 0:
            return 0
        expected = await self._visible_dead_letters()
        moved = 0
        stuck: list[str] = []
        try:
            while limit is None or moved < limit:
                want = MAX_BATCH if limit is None else min(MAX_BATCH, limit - moved)
                batch = await self._receive_dead_letters(
                    want,
                    wait=moved + len(stuck) < expected,
                    visibility=REDRIVE_VISIBILITY_SECONDS,
                )
                if not batch:
                    break
                sent, failed = await self._resend(batch)
                moved += len(sent)
                stuck.extend(failed)
                await self._delete_dead_letters(sent)
        finally:
            # Ones that could not be sent stay hidden until the end so the loop ends; then
            # they are dead letters again at once.
            await self._release_dead_letters(stuck)
        return moved

    async def _visible_dead_letters(self) -> int:
        client, url = self._client, await self._url(self.dead_letter_name)
        response = await self._aws(
            self.dead_letter_name,
            client.get_queue_attributes,
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))

    async def _receive_dead_letters(
        self, count: int, *, wait: bool, visibility: int
    ) -> list[MessageTypeDef]:
        client = self._poll_client if wait else self._client
        url = await self._url(self.dead_letter_name)
        response = await self._aws(
            self.dead_letter_name,
            client.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=1 if wait else 0,
            VisibilityTimeout=visibility,
            MessageSystemAttributeNames=SYSTEM_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    async def _resend(self, batch: Sequence[MessageTypeDef]) -> tuple[list[str], list[str]]:
        """Send dead letters to the queue; return the DLQ receipts of (sent, not sent)."""
        client, url = self._client, await self._url(self.name)
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, message in enumerate(batch):
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(index),
                "MessageBody": message["Body"],
            }
            copied = _copy_attributes(message.get("MessageAttributes", {}))
            if copied:
                entry["MessageAttributes"] = copied
            entries.append(entry)
        if sum(_size(entry) for entry in entries) > MAX_BATCH_BYTES:
            groups = [[entry] for entry in entries]
        else:
            groups = [entries]
        sent: list[str] = []
        failed: list[str] = []
        for group in groups:
            response = await self._aws(
                self.name, client.send_message_batch, QueueUrl=url, Entries=group
            )
            for failure in response.get("Failed", []):
                log.warning("redrive to %r failed: %s", self.name, failure.get("Message"))
                failed.append(batch[int(failure["Id"])]["ReceiptHandle"])
            sent.extend(batch[int(ok["Id"])]["ReceiptHandle"] for ok in response["Successful"])
        return sent, failed

    async def _delete_dead_letters(self, receipts: Sequence[str]) -> None:
        if not receipts:
            return
        client, url = self._client, await self._url(self.dead_letter_name)
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": receipt} for index, receipt in enumerate(receipts)
        ]
        response = await self._aws(
            self.dead_letter_name, client.delete_message_batch, QueueUrl=url, Entries=entries
        )
        for failure in response.get("Failed", []):
            # Sent but still dead: it will be redriven (and so delivered) once more.
            log.warning("redriven message left in %r: %s", self.dead_letter_name, failure)

    async def _release_dead_letters(self, receipts: Sequence[str]) -> None:
        """Make held dead letters visible again; best effort, they return by themselves."""
        if not receipts:
            return
        try:
            client, url = self._client, await self._url(self.dead_letter_name)
            for start in range(0, len(receipts), MAX_BATCH):
                entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                    {"Id": str(index), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                    for index, receipt in enumerate(receipts[start : start + MAX_BATCH])
                ]
                await self._aws(
                    self.dead_letter_name,
                    client.change_message_visibility_batch,
                    QueueUrl=url,
                    Entries=entries,
                )
        except BackendUnavailable as exc:
            log.warning("dead letters stay hidden a little longer: %s", exc)


def _copy_attributes(
    attributes: Mapping[str, Any],
) -> dict[str, MessageAttributeValueTypeDef]:
    """Received attributes as sendable ones (String, Number and Binary kinds kept)."""
    copied: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in attributes.items():
        if "StringValue" in value:
            copied[name] = {"DataType": value["DataType"], "StringValue": value["StringValue"]}
        elif "BinaryValue" in value:
            copied[name] = {"DataType": value["DataType"], "BinaryValue": value["BinaryValue"]}
    return copied


def _size(entry: SendMessageBatchRequestEntryTypeDef) -> int:
    size = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(str(value.get("StringValue", "")).encode())
        binary = value.get("BinaryValue", b"")
        size += len(binary) if isinstance(binary, bytes | bytearray | str) else 0
    return size


def _dead_letter(message: MessageTypeDef) -> DeadLetter:
    sent_at = message_timestamp(message, "SentTimestamp") or datetime.now(UTC)
    return DeadLetter(
        message_id=message["MessageId"],
        body=message["Body"],
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "0")),
        sent_at=sent_at,
        dead_at=max(
            sent_at, message_timestamp(message, "ApproximateFirstReceiveTimestamp") or sent_at
        ),
        attributes=decode_attributes(message),
    )

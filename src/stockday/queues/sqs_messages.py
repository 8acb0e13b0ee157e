"""SQS messages as the queue port sees them: attributes, whole seconds, received messages, and the
receipts a queue handle handed out. Pure conversions, no calls to SQS."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cachetools import FIFOCache

from stockday.queues.base import ReceivedMessage

if TYPE_CHECKING:
    from types_boto3_sqs.literals import MessageSystemAttributeNameType
    from types_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

MAX_ATTRIBUTES = 10
# SQS receives, sends, deletes and changes visibility at most this many messages per call.
MAX_BATCH = 10
# What a received message is asked to carry: received_message and dead letters read these.
SYSTEM_ATTRIBUTES: list[MessageSystemAttributeNameType] = [
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
]
# Letters, digits, "_", "-" and "." (not first, last or doubled), at most 256 characters.
_ATTRIBUTE_NAME = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)")
_RESERVED_PREFIXES = ("aws.", "amazon.")


def whole_seconds(seconds: float, limit: int) -> int:
    """SQS takes whole seconds: round up (never shorter than asked), within 0..limit."""
    return max(0, min(limit, math.ceil(seconds)))


def encode_attributes(attributes: Mapping[str, str]) -> dict[str, MessageAttributeValueTypeDef]:
    """String MessageAttributes; what SQS would refuse is a ValueError here, not an outage."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"SQS carries at most {MAX_ATTRIBUTES} attributes, got {len(attributes)}")
    for name, value in attributes.items():
        if not _ATTRIBUTE_NAME.fullmatch(name) or name.lower().startswith(_RESERVED_PREFIXES):
            raise ValueError(f"{name!r} is not a valid SQS message attribute name")
        if not value:
            raise ValueError(f"SQS does not carry empty attribute values ({name!r})")
    return {
        name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
    }


def decode_attributes(message: MessageTypeDef) -> dict[str, str]:
    return {
        name: value["StringValue"]
        for name, value in message.get("MessageAttributes", {}).items()
        if "StringValue" in value
    }


def message_timestamp(
    message: MessageTypeDef, key: MessageSystemAttributeNameType
) -> datetime | None:
    raw = message.get("Attributes", {}).get(key)
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None


def received_message(message: MessageTypeDef) -> ReceivedMessage:
    return ReceivedMessage(
        message_id=message["MessageId"],
        body=message["Body"],
        receipt=message["ReceiptHandle"],
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
        sent_at=message_timestamp(message, "SentTimestamp") or datetime.now(UTC),
        attributes=decode_attributes(message),
    )


class Receipts(FIFOCache[str, str]):
    """Receipt -> message id for the receipts a handle handed out, to recognise those superseded
    by a later receive of the same message.

    Bounded: the oldest receipts are forgotten first (a forgotten receipt is left to SQS to
    judge), and the newest receipt of each message is forgotten with it.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(maxsize=capacity)
        self._latest: dict[str, str] = {}  # message id -> its newest receipt

    def issued(self, message_id: str, receipt: str) -> None:
        self[receipt] = message_id
        self._latest[message_id] = receipt

    def superseded(self, receipt: str) -> bool:
        message_id = self.get(receipt)
        return message_id is not None and self._latest.get(message_id) != receipt

    def settled(self, receipt: str) -> None:
        message_id = self.pop(receipt, None)
        if message_id is not None:
            self._forget(message_id, receipt)

    def popitem(self) -> tuple[str, str]:
        """Evict the oldest receipt (cachetools calls this when the map is full)."""
        receipt, message_id = super().popitem()
        self._forget(message_id, receipt)
        return receipt, message_id

    def _forget(self, message_id: str, receipt: str) -> None:
        if self._latest.get(message_id) == receipt:
            del self._latest[message_id]

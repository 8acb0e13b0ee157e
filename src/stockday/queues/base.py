"""The message queue port, shaped after SQS semantics (at-least-once, visibility timeout, DLQ)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from stockday.contracts.messages import MalformedMessage, decode


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str
    body: str
    receipt: str
    receive_count: int
    sent_at: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueStats:
    visible: int
    in_flight: int
    oldest_age_seconds: float
    dead_letters: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: int
    sent_at: datetime
    dead_at: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)
    # Why it died, for people: see dead_letter_reason.
    reason: str = ""


def dead_letter_reason(letter: DeadLetter, max_receives: int) -> str:
    """Why a message is dead, derived from its body (SQS cannot annotate a message).

    A body the domain cannot decode is named with the decoder's error; a well-formed message
    died because its handler kept failing, and the consumer logs say why under its id.
    """
    try:
        message = decode(letter.body)
    except MalformedMessage as exc:
        return f"malformed: {exc}"
    # On SQS each look at a dead letter adds one to its receive count; it died after at most
    # the redrive policy's max receives.
    failures = min(letter.receive_count, max_receives)
    return (
        f"{message.type} for {message.symbol}: handler failed {failures} times "
        f"(see the consumer logs for message {letter.message_id})"
    )


def with_reason(letter: DeadLetter, max_receives: int) -> DeadLetter:
    """The letter with its ``reason`` filled in."""
    return dataclasses.replace(letter, reason=dead_letter_reason(letter, max_receives))


class MessageQueue(Protocol):
    """One queue and its dead-letter queue.

    A received message stays invisible for the visibility timeout; if it is not deleted by
    then it is delivered again. A message received more than ``max_receives`` times moves to the
    dead-letter queue instead of being delivered again.
    """

    name: str

    async def send(
        self,
        body: str,
        *,
        attributes: Mapping[str, str] | None = None,
        delay_seconds: float = 0,
    ) -> str:
        """Enqueue a message; return its id."""

    async def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 1.0,
        visibility_timeout: float = 30.0,
    ) -> list[ReceivedMessage]:
        """Long-poll for up to ``max_messages`` (at most 10) for up to ``wait_seconds``."""

    async def delete(self, receipt: str) -> None:
        """Acknowledge a message. A stale receipt (message redelivered since) is ignored."""

    async def change_visibility(self, receipt: str, seconds: float) -> None:
        """Extend (or, with 0, end) the invisibility of a received message."""

    async def stats(self) -> QueueStats: ...

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` dead letters, oldest first, each with its reason."""

    async def redrive(self, *, limit: int | None = None) -> int:
        """Move dead letters back to the queue (receive count reset); return how many."""

    async def purge(self) -> None: ...

    async def check(self) -> None:
        """Raise BackendUnavailable with a one-line reason if the queue is not usable."""

    async def close(self) -> None: ...

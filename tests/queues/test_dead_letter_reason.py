"""Why a dead letter died, as the queue port explains it from the letter alone."""

from __future__ import annotations

from datetime import UTC, datetime

from stockday.contracts.messages import LogoResized, encode
from stockday.queues.base import DeadLetter, dead_letter_reason


def test_a_reason_counts_failures_up_to_the_max_receives() -> None:
    # On SQS every look at a dead letter adds a receive; it died after max_receives failures.
    job = LogoResized(symbol="X", upload_id="1", logo_key="logos/X/1.webp", width=1, height=1)
    now = datetime.now(UTC)
    letter = DeadLetter(
        message_id="m-7", body=encode(job), receive_count=9, sent_at=now, dead_at=now
    )
    assert dead_letter_reason(letter, max_receives=5) == (
        "logo.resized for X: handler failed 5 times (see the consumer logs for message m-7)"
    )
    schema_two = DeadLetter(
        message_id="m-8", body='{"schema_version": 2}', receive_count=5, sent_at=now, dead_at=now
    )
    assert dead_letter_reason(schema_two, max_receives=5) == (
        "malformed: unsupported schema_version 2"
    )

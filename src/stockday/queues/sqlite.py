"""SQLite message queue: SQS semantics on one local file shared by several processes.

Layout: every queue sharing the file has its rows in ``messages`` (tagged with the queue name);
its dead-letter queue is the rows of ``dead_letters`` with the same queue name. A row is visible
when ``visible_at <= now``; receiving sets ``visible_at`` to the end of the visibility timeout,
increments ``receive_count`` and stores a fresh receipt, so only the latest delivery can delete
or change the message. A message that was already delivered ``max_receives`` times is moved to
the dead letters by the next receive that would have delivered it (SQS's redrive policy).

Receive selects and claims messages inside one ``BEGIN IMMEDIATE`` transaction, which takes the
file's write lock first, so two receivers (tasks, handles or processes) never claim one message.
Every call is a few microseconds on a local file, so it runs inline in the event loop instead of
in a thread pool; no transaction is ever held across an ``await``.

Times are seconds since the epoch from the injected clock; the long-poll wait uses the
monotonic clock because it measures real waiting.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stockday.queues.base import DeadLetter, QueueStats, ReceivedMessage, with_reason
from stockday.sqlite.database import SharedDatabase

MAX_BATCH = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters (queue, seq);
"""


class SqliteQueue:
    """MessageQueue on a SQLite file in WAL mode; see the module docstring for the layout."""

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        max_receives: int = 5,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not name:
            raise ValueError("queue name must not be empty")
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.name = name
        self._max_receives = max_receives
        self._poll_interval = max(0.001, poll_interval)
        self._clock = clock
        self._database = SharedDatabase(path, _SCHEMA, "queue database")

    # -- the port ---------------------------------------------------------------------------

    async def send(
        self,
        body: str,
        *,
        attributes: Mapping[str, str] | None = None,
        delay_seconds: float = 0,
    ) -> str:
        """Enqueue a message, visible after ``delay_seconds``; return its id."""
        message_id = uuid.uuid4().hex
        now = self._clock()
        encoded = json.dumps(dict(attributes or {}), separators=(",", ":"))
        with self._database.write() as db:
            db.execute(
                "INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.name, message_id, body, encoded, now, now + max(0.0, delay_seconds)),
            )
        return message_id

    async def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 1.0,
        visibility_timeout: float = 30.0,
    ) -> list[ReceivedMessage]:
        """Long-poll: return as soon as any message is claimed, or [] after ``wait_seconds``."""
        limit = max(1, min(MAX_BATCH, max_messages))
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            batch = self._claim(limit, max(0.0, visibility_timeout))
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await asyncio.sleep(min(self._poll_interval, remaining))

    def _claim(self, limit: int, visibility_timeout: float) -> list[ReceivedMessage]:
        now = self._clock()
        # An idle poll only reads (WAL readers never block writers); the write lock is taken
        # only when there is something to claim.
        ready = (
            self._database.connection()
            .execute(
                "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
                (self.name, now),
            )
            .fetchone()
        )
        if ready is None:
            return []
        with self._database.write() as db:
            while True:
                rows = db.execute(
                    "SELECT seq, id, body, attributes, sent_at, receive_count FROM messages"
                    " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?",
                    (self.name, now, limit),
                ).fetchall()
                exhausted = [(row[0],) for row in rows if row[5] >= self._max_receives]
                if not exhausted:
                    break
                # Dead-lettered rows are gone, so the next round selects only deliverable ones.
                db.executemany(
                    "INSERT INTO dead_letters"
                    " (queue, id, body, attributes, sent_at, receive_count, dead_at)"
                    " SELECT queue, id, body, attributes, sent_at, receive_count, ?"
                    " FROM messages WHERE seq = ?",
                    [(now, seq) for (seq,) in exhausted],
                )
                db.executemany("DELETE FROM messages WHERE seq = ?", exhausted)
            batch = []
            for seq, message_id, body, attributes, sent_at, count in rows:
                receipt = uuid.uuid4().hex
                db.execute(
                    "UPDATE messages SET visible_at = ?, receive_count = ?, receipt = ?"
                    " WHERE seq = ?",
                    (now + visibility_timeout, count + 1, receipt, seq),
                )
                batch.append(
                    ReceivedMessage(
                        message_id=message_id,
                        body=body,
                        receipt=receipt,
                        receive_count=count + 1,
                        sent_at=_utc(sent_at),
                        attributes=_attributes(attributes),
                    )
                )
        return batch

    async def delete(self, receipt: str) -> None:
        """Acknowledge; a stale or unknown receipt matches no row and is ignored."""
        with self._database.write() as db:
            db.execute("DELETE FROM messages WHERE queue = ? AND receipt = ?", (self.name, receipt))

    async def change_visibility(self, receipt: str, seconds: float) -> None:
        """Make the message visible ``seconds`` from now; a stale receipt is ignored."""
        visible_at = self._clock() + max(0.0, seconds)
        with self._database.write() as db:
            db.execute(
                "UPDATE messages SET visible_at = ? WHERE queue = ? AND receipt = ?",
                (visible_at, self.name, receipt),
            )

    async def stats(self) -> QueueStats:
        """Counts in one read snapshot; delayed messages count as in flight (not yet visible)."""
        now = self._clock()
        db = self._database.connection()
        db.execute("BEGIN")
        try:
            visible, hidden, oldest = db.execute(
                "SELECT COALESCE(SUM(visible_at <= ?), 0), COALESCE(SUM(visible_at > ?), 0),"
                " MIN(sent_at) FROM messages WHERE queue = ?",
                (now, now, self.name),
            ).fetchone()
            (dead,) = db.execute(
                "SELECT COUNT(*) FROM dead_letters WHERE queue = ?", (self.name,)
            ).fetchone()
        finally:
            db.execute("COMMIT")
        return QueueStats(
            visible=visible,
            in_flight=hidden,
            oldest_age_seconds=max(0.0, now - oldest) if oldest is not None else 0.0,
            dead_letters=dead,
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at the dead letters, oldest first, without removing them."""
        rows = (
            self._database.connection()
            .execute(
                "SELECT id, body, receive_count, sent_at, dead_at, attributes FROM dead_letters"
                " WHERE queue = ? ORDER BY seq LIMIT ?",
                (self.name, max(0, limit)),
            )
            .fetchall()
        )
        return [
            with_reason(
                DeadLetter(
                    message_id=message_id,
                    body=body,
                    receive_count=count,
                    sent_at=_utc(sent_at),
                    dead_at=_utc(dead_at),
                    attributes=_attributes(attributes),
                ),
                self._max_receives,
            )
            for message_id, body, count, sent_at, dead_at, attributes in rows
        ]

    async def redrive(self, *, limit: int | None = None) -> int:
        """Move dead letters (oldest first) back as fresh, visible messages; return how many."""
        now = self._clock()
        with self._database.write() as db:
            seqs = db.execute(
                "SELECT seq FROM dead_letters WHERE queue = ? ORDER BY seq LIMIT ?",
                (self.name, -1 if limit is None else max(0, limit)),
            ).fetchall()
            db.executemany(
                "INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at)"
                " SELECT queue, id, body, attributes, sent_at, ? FROM dead_letters WHERE seq = ?",
                [(now, seq) for (seq,) in seqs],
            )
            db.executemany("DELETE FROM dead_letters WHERE seq = ?", seqs)
        return len(seqs)

    async def purge(self) -> None:
        """Delete every message of the queue, in flight or not; the dead letters are kept.

        As in SQS, the dead-letter queue is a queue of its own and a purge of the source queue
        leaves it alone, so that poison messages survive for inspection and redrive.
        """
        with self._database.write() as db:
            db.execute("DELETE FROM messages WHERE queue = ?", (self.name,))

    async def check(self) -> None:
        """Raise BackendUnavailable unless the file can be opened and written."""
        try:
            with self._database.write() as db:
                # A statement that writes (no rows): a read-only file fails here.
                db.execute("DELETE FROM messages WHERE seq = -1")
        except sqlite3.Error as exc:
            raise self._database.unavailable(exc) from None

    async def close(self) -> None:
        self._database.close()


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _attributes(encoded: str) -> dict[str, str]:
    decoded: Any = json.loads(encoded)
    return {str(k): str(v) for k, v in decoded.items()}

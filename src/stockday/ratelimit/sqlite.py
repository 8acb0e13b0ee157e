"""The local rate-limit store: fixed-window counters in a SQLite file every replica shares.

An adapter of the storage interface of the ``limits`` library, so its fixed-window strategy
counts here exactly as it counts in memcached on AWS. The stack's replicas are separate
processes, so an in-process store would give each its own count: the file in the data
directory is what they share, as they share the stock database. One upsert per hit, inline in
the event loop (a few microseconds on a local file) with a short busy timeout, so that a busy
file costs a request at most that long; the limiter then lets the request through.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from limits.aio.storage import Storage

from stockday.sqlite.database import SharedDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

# A window that ended starts again from the amount of this hit; a live one adds to its count.
_INCR = """
INSERT INTO counters (key, count, expires_at) VALUES (:key, :amount, :expires_at)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN expires_at <= :now THEN :amount ELSE count + :amount END,
    expires_at = CASE WHEN expires_at <= :now THEN :expires_at ELSE expires_at END
RETURNING count
"""

BUSY_TIMEOUT_MS = 100
# Expired counters are deleted every this many hits, so the table holds live clients only.
PURGE_EVERY = 1000


class SqliteLimitStorage(Storage):
    """``limits`` storage on a SQLite file (fixed window only)."""

    STORAGE_SCHEME = None  # built by the composition root, never from a URI

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._database = SharedDatabase(path, _SCHEMA, "rate-limit database")
        self._clock = clock
        self._hits = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (sqlite3.Error, OSError)

    def _connection(self) -> sqlite3.Connection:
        fresh = self._hits == 0
        db = self._database.connection()
        if fresh:  # the shared recipe waits 10 s on a busy file; a limiter must not
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return db

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self._clock()
        db = self._connection()
        self._hits += 1
        if self._hits % PURGE_EVERY == 0:
            db.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        row = db.execute(
            _INCR, {"key": key, "amount": amount, "expires_at": now + expiry, "now": now}
        ).fetchone()
        return int(row[0])

    async def get(self, key: str) -> int:
        row = self._live(key)
        return 0 if row is None else int(row[0])

    async def get_expiry(self, key: str) -> float:
        row = self._live(key)
        return self._clock() if row is None else float(row[1])

    async def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1").fetchone()
        except Exception:
            return False
        return True

    async def reset(self) -> int | None:
        return self._connection().execute("DELETE FROM counters").rowcount

    async def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM counters WHERE key = ?", (key,))

    async def close(self) -> None:
        self._database.close()

    def _live(self, key: str) -> tuple[int, float] | None:
        row = (
            self._connection()
            .execute(
                "SELECT count, expires_at FROM counters WHERE key = ? AND expires_at > ?",
                (key, self._clock()),
            )
            .fetchone()
        )
        return None if row is None else (row[0], row[1])

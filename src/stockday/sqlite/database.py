"""Opening a SQLite file that several processes share: the one recipe of the SQLite adapters."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockday.domain.errors import BackendUnavailable

MMAP_BYTES = 256 * 1024 * 1024
BUSY_TIMEOUT_MS = 10_000
OPEN_ATTEMPTS = 20


def open_shared_database(path: Path, schema: str) -> sqlite3.Connection:
    """Connect in WAL mode with a busy timeout and create ``schema`` if needed.

    Switching to WAL and creating the schema can fail with "database is locked" without the
    busy handler being consulted while another process does the same on a new file, so that
    step is retried with a short linear backoff (only ever at start-up).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(OPEN_ATTEMPTS):
        db = sqlite3.connect(
            path,
            isolation_level=None,  # transactions are explicit
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            # Survives process crashes; a power cut may lose the last commits (local use).
            db.execute("PRAGMA synchronous=NORMAL")
            # Reads through a memory map instead of a read() per page: a random pick on a
            # million stocks then costs what it costs on a thousand (bench/random_pick.py).
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            db.executescript(f"BEGIN IMMEDIATE; {schema} COMMIT;")
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
        except BaseException:
            db.close()
            raise
    raise AssertionError("unreachable")


class SharedDatabase:
    """One lazily opened connection to a SQLite file that other processes share too.

    ``what`` names the database in the one-line reason of BackendUnavailable ("stock database").
    """

    def __init__(self, path: Path, schema: str, what: str) -> None:
        self.path = path
        self._schema = schema
        self._what = what
        self._db: sqlite3.Connection | None = None

    def unavailable(self, exc: BaseException) -> BackendUnavailable:
        """The readiness reason of an unusable file, naming the setting that places it."""
        reason = str(exc).replace("\n", " ") or type(exc).__name__
        return BackendUnavailable(
            f"{self._what} {self.path} is not usable ({reason}); "
            "set STOCKDAY_DATA_DIR to a writable directory"
        )

    def connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = open_shared_database(self.path, self._schema)
            except (sqlite3.Error, OSError) as exc:
                raise self.unavailable(exc) from None
        return self._db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short ``BEGIN IMMEDIATE`` transaction, rolled back on any error.

        IMMEDIATE takes the file's write lock up front, so concurrent writers in other
        processes queue on the busy timeout instead of failing at commit; when even that times
        out, BackendUnavailable is raised. Never await inside it.
        """
        db = self.connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self.unavailable(exc) from None
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

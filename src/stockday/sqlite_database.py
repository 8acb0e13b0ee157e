"""Opening a SQLite file that several processes share: the one recipe of the SQLite adapters."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

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

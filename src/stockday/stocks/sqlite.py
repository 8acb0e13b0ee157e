"""SQLite stock repository: the embedded adapter, shared safely by several processes.

Uniform constant-time random pick: every stock holds a dense ``slot`` number 0..n-1 and the
count lives in a one-row table. A pick draws k uniformly in [0, n) and reads the stock in slot k
through a unique index, in one read snapshot. Deleting moves the last slot into the hole, so the
slots stay dense. A hidden stock leaves the slots the same way and takes a negative slot of
its own (below every other), so "hidden" is "slot < 0" and needs no column. Each call is a few
microseconds on a local file, so it runs inline in the
event loop rather than in a thread pool; no write transaction is held across an ``await``.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from stockday.domain.stocks import Logo, LogoState, Price, Stock
from stockday.sqlite.database import SharedDatabase
from stockday.stocks.base import StockExists, StockNotFound, StockPage, VersionConflict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stocks (
    symbol TEXT PRIMARY KEY,
    slot INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    logo_state TEXT NOT NULL,
    logo_upload_id TEXT,
    logo_key TEXT,
    logo_error TEXT,
    last_price TEXT,
    request_key TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stock_count (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
INSERT OR IGNORE INTO stock_count (id, n) VALUES (0, 0);
CREATE INDEX IF NOT EXISTS stocks_by_created ON stocks (created_at);
"""

_COLUMNS = (
    "symbol, name, version, logo_state, logo_upload_id, logo_key, logo_error, last_price,"
    " request_key, created_at, updated_at, slot"
)


class SqliteStockRepository:
    """StockRepository on a SQLite file in WAL mode."""

    def __init__(self, path: Path, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.SystemRandom()
        self._database = SharedDatabase(path, _SCHEMA, "stock database")

    async def add(self, stock: Stock) -> None:
        with self._database.write() as db:
            existing = db.execute(
                f"SELECT {_COLUMNS} FROM stocks WHERE symbol = ?", (stock.symbol,)
            ).fetchone()
            if existing is not None:
                raise StockExists(_to_stock(existing))
            (n,) = db.execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
            db.execute(
                "INSERT INTO stocks (slot, symbol, name, version, logo_state, logo_upload_id,"
                " logo_key, logo_error, last_price, request_key, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (n, *_to_row(stock)),
            )
            db.execute("UPDATE stock_count SET n = n + 1 WHERE id = 0")

    async def get(self, symbol: str) -> Stock | None:
        row = (
            self._database.connection()
            .execute(f"SELECT {_COLUMNS} FROM stocks WHERE symbol = ?", (symbol,))
            .fetchone()
        )
        return _to_stock(row) if row else None

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> StockPage:
        limit = max(1, min(limit, 500))
        rows = (
            self._database.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM stocks WHERE symbol > ? AND slot >= 0"
                " ORDER BY symbol LIMIT ?",
                (cursor or "", limit + 1),
            )
            .fetchall()
        )
        items = [_to_stock(r) for r in rows[:limit]]
        next_cursor = items[-1].symbol if len(rows) > limit else None
        return StockPage(items=items, next_cursor=next_cursor)

    async def update(self, stock: Stock, *, expected_version: int) -> None:
        db = self._database.connection()
        row = _to_row(stock)
        cur = db.execute(
            "UPDATE stocks SET name = ?, version = ?, logo_state = ?, logo_upload_id = ?,"
            " logo_key = ?, logo_error = ?, last_price = ?, request_key = ?, updated_at = ?"
            " WHERE symbol = ? AND version = ?",
            (*row[1:9], row[10], stock.symbol, expected_version),
        )
        if cur.rowcount == 1:
            return
        if await self.get(stock.symbol) is None:
            raise StockNotFound(stock.symbol)
        raise VersionConflict(stock.symbol, expected_version)

    async def delete(self, symbol: str) -> Stock | None:
        with self._database.write() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM stocks WHERE symbol = ?", (symbol,)
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM stocks WHERE symbol = ?", (symbol,))
            _close_hole(db, row[-1])
        return _to_stock(row)

    async def recent(self, *, limit: int = 50) -> Sequence[Stock]:
        limit = max(1, min(limit, 500))
        rows = (
            self._database.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM stocks ORDER BY created_at DESC, symbol LIMIT ?", (limit,)
            )
            .fetchall()
        )
        return [_to_stock(r) for r in rows]

    async def set_hidden(self, symbol: str, hidden: bool) -> Stock | None:
        with self._database.write() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM stocks WHERE symbol = ?", (symbol,)
            ).fetchone()
            if row is None:
                return None
            slot = row[-1]
            if hidden == (slot < 0):
                return _to_stock(row)
            if hidden:  # below every slot in use, through the unique index: O(log n)
                (lowest,) = db.execute("SELECT MIN(slot) FROM stocks").fetchone()
                new_slot = min(lowest, 0) - 1
            else:
                (new_slot,) = db.execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
                db.execute("UPDATE stock_count SET n = n + 1 WHERE id = 0")
            db.execute("UPDATE stocks SET slot = ? WHERE symbol = ?", (new_slot, symbol))
            _close_hole(db, slot)
        return _to_stock((*row[:-1], new_slot))

    async def count(self) -> int:
        (n,) = (
            self._database.connection().execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
        )
        return int(n)

    async def random(self) -> Stock | None:
        db = self._database.connection()
        # One read transaction: count and slot lookup see the same snapshot.
        db.execute("BEGIN")
        try:
            (n,) = db.execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
            if n == 0:
                return None
            slot = self._rng.randrange(n)
            row = db.execute(f"SELECT {_COLUMNS} FROM stocks WHERE slot = ?", (slot,)).fetchone()
        finally:
            db.execute("COMMIT")
        return _to_stock(row) if row else None

    async def check(self) -> None:
        try:
            self._database.connection().execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
        except sqlite3.Error as exc:
            raise self._database.unavailable(exc) from None

    async def close(self) -> None:
        self._database.close()


def _close_hole(db: sqlite3.Connection, slot: int) -> None:
    """Keep the slots dense once ``slot`` was vacated: the last slot moves into the hole.

    A hidden stock's negative slot is outside the range: nothing moves.
    """
    if slot < 0:
        return
    (n,) = db.execute("SELECT n FROM stock_count WHERE id = 0").fetchone()
    if slot != n - 1:
        db.execute("UPDATE stocks SET slot = ? WHERE slot = ?", (slot, n - 1))
    db.execute("UPDATE stock_count SET n = n - 1 WHERE id = 0")


def _to_row(stock: Stock) -> tuple[Any, ...]:
    price_json = json.dumps(stock.last_price.to_record()) if stock.last_price else None
    return (
        stock.symbol,
        stock.name,
        stock.version,
        stock.logo.state.value,
        stock.logo.upload_id,
        stock.logo.key,
        stock.logo.error,
        price_json,
        stock.request_key,
        stock.created_at.isoformat(),
        stock.updated_at.isoformat(),
    )


def _to_stock(row: Any) -> Stock:
    (
        symbol,
        name,
        version,
        state,
        upload_id,
        key,
        error,
        price_json,
        request_key,
        created,
        updated,
        slot,
    ) = row
    price = Price.from_record(json.loads(price_json)) if price_json else None
    return Stock(
        symbol=symbol,
        name=name,
        version=version,
        logo=Logo(state=LogoState(state), upload_id=upload_id, key=key, error=error),
        last_price=price,
        request_key=request_key,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
        hidden=slot < 0,
    )

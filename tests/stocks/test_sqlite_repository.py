"""SQLite-specific: several processes share one stock database (the replicas of a service do)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from stockday.domain.errors import BackendUnavailable
from stockday.stocks.sqlite import SqliteStockRepository
from tests.stocks.churn import churn


def _churn(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    async def run() -> None:
        repository = SqliteStockRepository(Path(path))
        barrier.wait()
        await churn(repository, worker, rounds=60)
        await repository.close()

    asyncio.run(run())


def test_processes_sharing_a_database_keep_slots_dense(tmp_path: Path) -> None:
    path = tmp_path / "stocks.sqlite3"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    workers = [context.Process(target=_churn, args=(str(path), w, barrier)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    with sqlite3.connect(path) as db:
        slots = [row[0] for row in db.execute("SELECT slot FROM stocks ORDER BY slot")]
        (count,) = db.execute("SELECT n FROM stock_count").fetchone()
    # 3 workers x 60 adds, a third deleted, plus the one SHARED stock created exactly once.
    assert count == 3 * 40 + 1
    assert slots == list(range(count))


@pytest.mark.anyio
async def test_an_unusable_path_is_reported_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    repository = SqliteStockRepository(blocker / "stocks.sqlite3")
    with pytest.raises(BackendUnavailable) as info:
        await repository.check()
    message = str(info.value)
    assert "\n" not in message
    assert "STOCKDAY_DATA_DIR" in message

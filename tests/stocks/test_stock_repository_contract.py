"""The StockRepository contract, run against every adapter."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path

import pytest
from scipy.stats import chisquare

from stockday.domain.stocks import LogoState, Price, Stock
from stockday.stocks.base import StockExists, StockNotFound, StockRepository, VersionConflict
from stockday.stocks.dynamodb import DynamoDbStockRepository
from stockday.stocks.sqlite import SqliteStockRepository
from tests.support.aws import aws_target, new_stocks_table
from tests.support.seeded import seeded_rng

RepositoryFactory = Callable[[Path, random.Random], Awaitable[StockRepository]]


async def make_sqlite(tmp_path: Path, rng: random.Random) -> StockRepository:
    return SqliteStockRepository(tmp_path / "stocks.sqlite3", rng=rng)


async def make_dynamodb(tmp_path: Path, rng: random.Random) -> StockRepository:
    """A fresh table on the session's moto server over HTTP, or on the endpoint
    STOCKDAY_TEST_DYNAMODB_ENDPOINT names."""
    config = aws_target("dynamodb").config
    return DynamoDbStockRepository(config, new_stocks_table(config), rng=rng)


# AWS adapters join here; the tests below stay unchanged.
REPOSITORY_FACTORIES = [
    pytest.param(make_sqlite, id="sqlite"),
    pytest.param(make_dynamodb, id="dynamodb"),
]


@pytest.fixture(params=REPOSITORY_FACTORIES)
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StockRepository]:
    factory: RepositoryFactory = request.param
    repository = await factory(tmp_path, seeded_rng())
    yield repository
    await repository.close()


pytestmark = pytest.mark.anyio


async def test_add_then_get(repo: StockRepository) -> None:
    await repo.add(Stock.new("aapl", "Apple Inc.", upload_id="u1"))
    stock = await repo.get("AAPL")
    assert stock is not None
    assert (stock.symbol, stock.name, stock.version) == ("AAPL", "Apple Inc.", 1)
    assert stock.logo.state is LogoState.PENDING
    assert stock.logo.upload_id == "u1"
    assert await repo.get("MSFT") is None


async def test_add_twice_is_a_conflict_not_a_duplicate(repo: StockRepository) -> None:
    await repo.add(Stock.new("AAPL", "Apple Inc.", request_key="k1"))
    with pytest.raises(StockExists) as info:
        await repo.add(Stock.new("AAPL", "Another Apple"))
    assert info.value.existing.name == "Apple Inc."
    assert info.value.existing.request_key == "k1"
    assert await repo.count() == 1


async def test_concurrent_creates_of_one_symbol_store_one(repo: StockRepository) -> None:
    results = await asyncio.gather(
        *(repo.add(Stock.new("TSLA", f"Tesla {i}")) for i in range(5)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, StockExists) for r in results if r is not None)
    assert await repo.count() == 1


async def test_update_is_conditional_on_version(repo: StockRepository) -> None:
    await repo.add(Stock.new("AAPL", "Apple Inc.", upload_id="u1"))
    stock = await repo.get("AAPL")
    assert stock is not None
    ready = stock.logo_ready("u1", "logos/AAPL/u1.webp")
    await repo.update(ready, expected_version=stock.version)
    stored = await repo.get("AAPL")
    assert stored is not None
    assert stored.version == 2
    assert stored.logo.state is LogoState.READY
    assert stored.logo.key == "logos/AAPL/u1.webp"
    # A writer that read version 1 loses: optimistic locking.
    with pytest.raises(VersionConflict):
        await repo.update(stock.request_logo("u2"), expected_version=stock.version)
    with pytest.raises(StockNotFound):
        await repo.update(Stock.new("NOPE", "Nope"), expected_version=1)


async def test_last_price_round_trips(repo: StockRepository) -> None:
    await repo.add(Stock.new("AAPL", "Apple Inc."))
    stock = await repo.get("AAPL")
    assert stock is not None
    price = Price(value=190.5, previous_close=188.25, as_of=date(2026, 11, 20), source="simulated")
    await repo.update(stock.with_price(price), expected_version=stock.version)
    stored = await repo.get("AAPL")
    assert stored is not None
    assert stored.last_price == price


async def test_list_pages_in_symbol_order(repo: StockRepository) -> None:
    symbols = [f"S{i:03d}" for i in range(25)]
    for symbol in reversed(symbols):
        await repo.add(Stock.new(symbol, f"Stock {symbol}"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await repo.list(limit=10, cursor=cursor)
        assert len(page.items) <= 10
        seen.extend(s.symbol for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == symbols
    empty = await repo.list(limit=10, cursor="ZZZ")
    assert empty.items == []
    assert empty.next_cursor is None


async def test_delete(repo: StockRepository) -> None:
    await repo.add(Stock.new("AAPL", "Apple Inc."))
    removed = await repo.delete("AAPL")
    assert removed is not None
    assert removed.symbol == "AAPL"
    assert await repo.get("AAPL") is None
    assert await repo.delete("AAPL") is None
    assert await repo.count() == 0
    await repo.add(Stock.new("AAPL", "Apple again"))
    assert await repo.count() == 1


async def test_random_on_empty_and_single(repo: StockRepository) -> None:
    assert await repo.random() is None
    await repo.add(Stock.new("ONLY", "The only one"))
    for _ in range(20):
        stock = await repo.random()
        assert stock is not None
        assert stock.symbol == "ONLY"
    await repo.delete("ONLY")
    assert await repo.random() is None


async def test_random_reaches_every_stock_after_deletes(repo: StockRepository) -> None:
    for i in range(8):
        await repo.add(Stock.new(f"R{i}", f"Stock {i}"))
    for symbol in ("R0", "R3", "R7"):
        await repo.delete(symbol)
    remaining = {"R1", "R2", "R4", "R5", "R6"}
    seen = Counter()
    for _ in range(500):
        stock = await repo.random()
        assert stock is not None
        seen[stock.symbol] += 1
    assert set(seen) == remaining
    assert await repo.count() == 5


async def test_random_is_uniform(repo: StockRepository) -> None:
    """10 stocks, 5,000 picks: chi-square must not reject uniformity at p > 0.001."""
    symbols = [f"U{i}" for i in range(10)]
    for symbol in symbols:
        await repo.add(Stock.new(symbol, f"Uniform {symbol}"))
    # Deletes and re-adds exercise the slot compaction too.
    await repo.delete("U4")
    await repo.add(Stock.new("U4", "Uniform U4"))
    picks = Counter()
    for _ in range(5000):
        stock = await repo.random()
        assert stock is not None
        picks[stock.symbol] += 1
    observed = [picks[s] for s in symbols]
    result = chisquare(observed)
    assert result.pvalue > 0.001, (observed, result)


async def test_check_passes_on_a_working_store(repo: StockRepository) -> None:
    await repo.check()


# --- hiding ---------------------------------------------------------------------------------


async def picked_symbols(repo: StockRepository, picks: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(picks):
        stock = await repo.random()
        assert stock is not None
        seen[stock.symbol] += 1
    return seen


async def test_a_hidden_stock_leaves_the_pick_and_the_listing_not_its_symbol(
    repo: StockRepository,
) -> None:
    for i in range(6):
        await repo.add(Stock.new(f"H{i}", f"Stock {i}"))
    hidden = await repo.set_hidden("H2", True)
    assert hidden is not None
    assert (hidden.symbol, hidden.hidden) == ("H2", True)
    assert await repo.count() == 5
    assert set(await picked_symbols(repo, 300)) == {"H0", "H1", "H3", "H4", "H5"}
    listed = [s.symbol for s in (await repo.list(limit=50)).items]
    assert listed == ["H0", "H1", "H3", "H4", "H5"]
    stored = await repo.get("H2")
    assert stored is not None
    assert stored.hidden
    assert not (await repo.get("H3") or hidden).hidden


async def test_unhide_puts_a_stock_back_in_the_pick(repo: StockRepository) -> None:
    for i in range(4):
        await repo.add(Stock.new(f"V{i}", f"Stock {i}"))
    await repo.set_hidden("V0", True)
    await repo.set_hidden("V3", True)  # the last slot: nothing moves
    assert set(await picked_symbols(repo, 200)) == {"V1", "V2"}
    shown = await repo.set_hidden("V0", False)
    assert shown is not None
    assert not shown.hidden
    assert await repo.count() == 3
    assert set(await picked_symbols(repo, 300)) == {"V0", "V1", "V2"}
    assert [s.symbol for s in (await repo.list()).items] == ["V0", "V1", "V2"]


async def test_hiding_is_idempotent_and_a_missing_stock_is_none(repo: StockRepository) -> None:
    await repo.add(Stock.new("ONE", "One"))
    await repo.add(Stock.new("TWO", "Two"))
    for _ in range(2):
        again = await repo.set_hidden("ONE", True)
        assert again is not None
        assert again.hidden
    assert await repo.count() == 1
    for _ in range(2):
        shown = await repo.set_hidden("ONE", False)
        assert shown is not None
        assert not shown.hidden
    assert await repo.count() == 2
    assert await repo.set_hidden("NONE", True) is None
    assert await repo.set_hidden("NONE", False) is None


async def test_every_stock_hidden_is_an_empty_pick(repo: StockRepository) -> None:
    await repo.add(Stock.new("SOLE", "Sole"))
    await repo.set_hidden("SOLE", True)
    assert await repo.random() is None
    assert await repo.count() == 0
    assert (await repo.list()).items == []


async def test_an_update_keeps_a_stock_hidden(repo: StockRepository) -> None:
    await repo.add(Stock.new("KEEP", "Keep", upload_id="u1"))
    await repo.add(Stock.new("SHOW", "Show"))
    await repo.set_hidden("KEEP", True)
    stock = await repo.get("KEEP")
    assert stock is not None
    ready = stock.logo_ready("u1", "logos/KEEP/u1.webp")
    await repo.update(ready, expected_version=stock.version)
    stored = await repo.get("KEEP")
    assert stored is not None
    assert stored.hidden
    assert stored.logo.state is LogoState.READY
    assert set(await picked_symbols(repo, 50)) == {"SHOW"}


async def test_a_hidden_stock_can_be_deleted(repo: StockRepository) -> None:
    for symbol in ("A", "B", "C"):
        await repo.add(Stock.new(symbol, symbol))
    await repo.set_hidden("B", True)
    removed = await repo.delete("B")
    assert removed is not None
    assert removed.hidden
    assert await repo.get("B") is None
    assert await repo.count() == 2
    await repo.delete("A")
    assert set(await picked_symbols(repo, 50)) == {"C"}
    await repo.add(Stock.new("B", "B again"))
    assert set(await picked_symbols(repo, 200)) == {"B", "C"}


async def test_recent_lists_newest_first_hidden_included(repo: StockRepository) -> None:
    for i in range(5):
        await repo.add(Stock.new(f"N{i}", f"Stock {i}"))
    await repo.set_hidden("N3", True)
    recent = await repo.recent(limit=3)
    assert [s.symbol for s in recent] == ["N4", "N3", "N2"]
    assert [s.hidden for s in recent] == [False, True, False]


async def test_random_is_uniform_over_visible_stocks(repo: StockRepository) -> None:
    """12 stocks, 4 hidden (one unhidden again), 5,000 seeded picks: never a hidden one, and
    chi-square must not reject uniformity over the rest at p > 0.001."""
    symbols = [f"W{i}" for i in range(12)]
    for symbol in symbols:
        await repo.add(Stock.new(symbol, f"Uniform {symbol}"))
    for symbol in ("W0", "W5", "W11", "W7"):
        await repo.set_hidden(symbol, True)
    await repo.set_hidden("W5", False)
    visible = [s for s in symbols if s not in {"W0", "W11", "W7"}]
    picks = await picked_symbols(repo, 5000)
    assert set(picks) == set(visible)
    observed = [picks[s] for s in visible]
    result = chisquare(observed)
    assert result.pvalue > 0.001, (observed, result)

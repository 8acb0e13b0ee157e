"""Random pick cost against the number of stocks, on each stock repository adapter.

For every backend and size: a fresh store holding that many stocks, then many picks through the
repository port; prints the median pick latency per size and the ratio largest / smallest
(1.0 = constant time; target at most 1.5 from 1,000 to 1,000,000 stocks).

- sqlite: filled through the port (``add``, one transaction per stock).
- dynamodb: the real adapter against a moto server this script starts on 127.0.0.1. moto
  copies the whole table on every TransactWriteItems, so filling through the adapter's
  transactional ``add`` is quadratic (seconds per add at 20,000 stocks); the items are instead
  bulk-loaded with BatchWriteItem in the adapter's own item layout (built by the adapter's
  own item functions: ``STOCK#`` items, ``SLOT#k`` copies, the ``META#count`` counter). That is
  a load shortcut only: after loading, the adapter's ``count``, ``random`` and ``get`` are
  checked, and (on tables up to 10,000 stocks) one stock is added and deleted through its
  transactions. moto is an emulator:
  its latency is not DynamoDB's (a pick is an HTTP round trip into a Python server); what the
  ratio shows is that the pick reads the same two items whatever the size, without a scan.
  Bulk loading into moto runs at a few thousand items a second, so the DynamoDB sizes default
  to 1,000 / 10,000 / 100,000; ``--dynamodb-sizes 1000 100000 1000000`` runs the full range
  (about 2 million items: ten minutes or more and several GB of memory in moto).

    uv run python bench/random_pick.py [--backend sqlite|dynamodb|all] [--sizes N ...]
                                       [--picks N] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    RESULTS_DIR,
    command_line,
    free_port,
    print_targets,
    target,
    warn_if_busy,
    write_report,
)

from stockday.domain.stocks import Stock
from stockday.stocks.base import StockRepository
from stockday.stocks.sqlite import SqliteStockRepository

RESULTS = RESULTS_DIR / "random_pick.json"
BACKENDS = ("sqlite", "dynamodb")
DEFAULT_SIZES = {"sqlite": [1_000, 100_000, 1_000_000], "dynamodb": [1_000, 10_000, 100_000]}
DEFAULT_PICKS = {"sqlite": 20_000, "dynamodb": 2_000}
MAX_RATIO = 1.5
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit per request
VERIFY_WRITES_UP_TO = 10_000


def symbol_of(i: int) -> str:
    return f"S{i:07d}"


def new_stock(i: int) -> Stock:
    return Stock.new(symbol_of(i), f"Stock number {i}")


async def time_picks(repository: StockRepository, picks: int) -> float:
    """Median seconds per pick, over batches of up to 100 picks."""
    batch = max(1, min(100, picks // 10))
    per_pick = []
    for _ in range(max(1, picks // batch)):
        started = time.perf_counter()
        for _ in range(batch):
            if await repository.random() is None:
                raise RuntimeError("a pick on a filled store returned nothing")
        per_pick.append((time.perf_counter() - started) / batch)
    return statistics.median(per_pick)


@dataclass
class FilledStore:
    repository: StockRepository
    fill_seconds: float
    checks: dict[str, Any]


StoreFactory = Callable[[int], AbstractAsyncContextManager[FilledStore]]


# --- sqlite ------------------------------------------------------------------------------


@asynccontextmanager
async def sqlite_backend() -> AsyncIterator[tuple[StoreFactory, dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="random-pick-") as tmp:

        @asynccontextmanager
        async def filled(size: int) -> AsyncIterator[FilledStore]:
            repository = SqliteStockRepository(Path(tmp) / f"stocks-{size}.sqlite3")
            started = time.perf_counter()
            for i in range(size):
                await repository.add(new_stock(i))
            fill_seconds = time.perf_counter() - started
            try:
                yield FilledStore(repository, fill_seconds, {"count": await repository.count()})
            finally:
                await repository.close()
                for path in Path(tmp).glob(f"stocks-{size}.sqlite3*"):
                    path.unlink()

        yield filled, {"load": "through the port: add(), one transaction per stock"}


# --- dynamodb ----------------------------------------------------------------------------


def bulk_load(client: Any, table: str, size: int, threads: int) -> None:
    """Write ``size`` stocks in the adapter's item layout with BatchWriteItem (a load shortcut).

    The items come from the adapter's own item functions, so the layout cannot drift from it.
    """
    from stockday.aws.dynamodb_values import to_item
    from stockday.stocks.dynamodb_items import COUNTER_PK, slot_item, stock_item, stock_record

    def write(start: int, stop: int) -> None:
        requests = []
        for i in range(start, stop):
            record = stock_record(new_stock(i), slot=i, rev=0)
            requests += [
                {"PutRequest": {"Item": to_item(stock_item(record))}},
                {"PutRequest": {"Item": to_item(slot_item(record))}},
            ]
        for first in range(0, len(requests), BATCH_WRITE_ITEMS):
            pending = {table: requests[first : first + BATCH_WRITE_ITEMS]}
            for attempt in range(10):
                answer = client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError("BatchWriteItem kept leaving items unprocessed")

    chunk = 2_000
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda s: write(s, min(s + chunk, size)), range(0, size, chunk)))
    client.put_item(TableName=table, Item={"pk": {"S": COUNTER_PK}, "n": {"N": str(size)}})


async def verify_loaded(repository: Any, size: int, writer: Any | None) -> dict[str, Any]:
    """The adapter works on the bulk-loaded table as on one it filled itself.

    ``writer`` (an adapter with long timeouts, or None to skip) adds and deletes one stock
    through the adapter's transactions: moto copies the whole table on every
    TransactWriteItems, so that step is done on small tables only.
    """
    count = await repository.count()
    if count != size:
        raise RuntimeError(f"count() says {count} after loading {size} stocks")
    picked = await repository.random()
    if picked is None or await repository.get(picked.symbol) is None:
        raise RuntimeError("random() or get() does not see the loaded stocks")
    checks: dict[str, Any] = {"count": count, "random_then_get": picked.symbol}
    if writer is None:
        checks["add_then_delete"] = (
            f"skipped above {VERIFY_WRITES_UP_TO:,} stocks (moto copies the table per transaction)"
        )
        return checks
    extra = Stock.new("ZZZZ", "Added through the adapter's transaction")
    await writer.add(extra)
    added_count = await writer.count()
    if await writer.delete(extra.symbol) is None or await writer.count() != size:
        raise RuntimeError("the adapter's add/delete do not fit the loaded layout")
    checks["add_then_delete"] = f"{size} -> {added_count} -> {size}"
    return checks


@asynccontextmanager
async def dynamodb_backend(
    load_threads: int,
) -> AsyncIterator[tuple[StoreFactory, dict[str, Any]]]:
    import moto

    from stockday.aws.clients import AwsConfig, make_client
    from stockday.aws.provision import create_table
    from stockday.devstack.emulator import EMULATOR_CREDENTIALS, start_emulator, stop_process
    from stockday.stocks.dynamodb import DynamoDbStockRepository

    os.environ.update(EMULATOR_CREDENTIALS)  # moto's placeholders; this process talks to moto only
    port = free_port()
    emulator = start_emulator(port)
    endpoint = f"http://127.0.0.1:{port}"
    config = AwsConfig(region="us-east-1", endpoint_url=endpoint)
    patient = AwsConfig(region="us-east-1", endpoint_url=endpoint, timeout_seconds=120)
    loader = make_client("dynamodb", patient)
    try:

        @asynccontextmanager
        async def filled(size: int) -> AsyncIterator[FilledStore]:
            table = f"stocks-{size}"
            create_table(loader, table)
            started = time.perf_counter()
            bulk_load(loader, table, size, load_threads)
            fill_seconds = time.perf_counter() - started
            repository = DynamoDbStockRepository(config, table)
            writer = (
                DynamoDbStockRepository(patient, table) if size <= VERIFY_WRITES_UP_TO else None
            )
            try:
                checks = await verify_loaded(repository, size, writer)
                yield FilledStore(repository, fill_seconds, checks)
            finally:
                await repository.close()
                if writer is not None:
                    await writer.close()
                loader.delete_table(TableName=table)  # frees moto's memory before the next size

        yield (
            filled,
            {
                "load": "bulk BatchWriteItem in the adapter's item layout (a load shortcut), "
                "then count/random/get through the adapter, and one add+delete through its "
                f"transactions on tables up to {VERIFY_WRITES_UP_TO:,} stocks",
                "emulator": f"moto {moto.__version__} server on {endpoint}",
                "note": "moto's latency is not DynamoDB's; the ratio shows the pick does not scan",
            },
        )
    finally:
        loader.close()
        stop_process(emulator)


# --- main ----------------------------------------------------------------------------------


async def run_backend(
    name: str, sizes: Sequence[int], picks: int, load_threads: int
) -> dict[str, Any]:
    backend = sqlite_backend() if name == "sqlite" else dynamodb_backend(load_threads)
    results: dict[str, dict[str, Any]] = {}
    async with backend as (filled, about):
        for size in sizes:
            async with filled(size) as store:
                await time_picks(store.repository, max(100, picks // 20))  # warm up
                per_pick = await time_picks(store.repository, picks)
            results[str(size)] = {
                "pick_us": per_pick * 1e6,
                "fill_s": store.fill_seconds,
                "checks": store.checks,
            }
            print(
                f"{name:<8} {size:>9,} stocks: {per_pick * 1e6:9.1f} us per pick"
                f"   (loaded in {store.fill_seconds:.1f} s)",
                flush=True,
            )
    smallest, largest = str(min(sizes)), str(max(sizes))
    ratio = results[largest]["pick_us"] / results[smallest]["pick_us"]
    label = f"{int(largest):,} / {int(smallest):,} stocks"
    print(f"{name:<8} ratio {label}: {ratio:.2f}", flush=True)
    return {
        **about,
        "sizes": list(sizes),
        "picks_per_size": picks,
        "results": results,
        "ratio_largest_to_smallest": ratio,
        "ratio_of": label,
        "target": target(f"{name} pick latency {label}", ratio, "<=", MAX_RATIO),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    warn_if_busy()
    names = BACKENDS if args.backend == "all" else (args.backend,)
    backends: dict[str, Any] = {}
    for name in names:
        sizes = sorted(
            set(
                (args.dynamodb_sizes if name == "dynamodb" else None)
                or args.sizes
                or DEFAULT_SIZES[name]
            )
        )
        picks = args.picks or DEFAULT_PICKS[name]
        backends[name] = await run_backend(name, sizes, picks, args.load_threads)
    if "dynamodb" in backends and max(backends["dynamodb"]["sizes"]) < 1_000_000:
        print(
            "dynamodb sizes stop below 1,000,000: bulk loading into moto is too slow for a "
            "default run (use --dynamodb-sizes 1000 100000 1000000)"
        )
    targets = [b["target"] for b in backends.values()]
    print()
    print_targets(targets)
    return write_report("random_pick", {"backends": backends, "targets": targets}, args.output)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help="numbers of stocks, for every backend [default: sqlite 1k 100k 1M, "
        "dynamodb 1k 10k 100k]",
    )
    parser.add_argument(
        "--dynamodb-sizes", type=int, nargs="+", help="numbers of stocks for dynamodb only"
    )
    parser.add_argument(
        "--picks", type=int, help="picks timed per size [default: sqlite 20000, dynamodb 2000]"
    )
    parser.add_argument(
        "--load-threads", type=int, default=4, help="parallel BatchWriteItem callers (dynamodb)"
    )
    args = parser.parse_args(argv)
    if any(size < 1 for size in [*(args.sizes or []), *(args.dynamodb_sizes or [])]):
        parser.error("sizes must be positive")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

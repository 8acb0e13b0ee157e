"""Random pick cost against the number of stocks, on every stock repository adapter.

Fills a fresh store to each size through the repository port, then times many picks; prints
the median pick latency per size and the ratio largest/smallest (1.0 = constant time).

    uv run python bench/random_pick.py [--sizes 1000 100000] [--picks 20000] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from stockday.domain.stocks import Stock
from stockday.stocks.base import StockRepository
from stockday.stocks.sqlite import SqliteStockRepository

RESULTS = Path(__file__).parent / "results" / "random_pick.json"


async def fill(repository: StockRepository, size: int) -> None:
    for i in range(size):
        await repository.add(Stock.new(f"S{i:07d}", f"Stock number {i}"))


async def time_picks(repository: StockRepository, picks: int) -> float:
    """Median seconds per pick, over batches of 100 picks."""
    batches = []
    for _ in range(picks // 100):
        started = time.perf_counter()
        for _ in range(100):
            await repository.random()
        batches.append((time.perf_counter() - started) / 100)
    return statistics.median(batches)


async def main(sizes: list[int], picks: int, output: Path = RESULTS) -> dict[str, object]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            repository = SqliteStockRepository(Path(tmp) / f"stocks-{size}.sqlite3")
            started = time.perf_counter()
            await fill(repository, size)
            filled = time.perf_counter() - started
            await time_picks(repository, 1000)  # warm the page cache
            per_pick = await time_picks(repository, picks)
            results[str(size)] = {"pick_us": per_pick * 1e6, "fill_s": filled}
            print(f"sqlite  {size:>9,} stocks: {per_pick * 1e6:7.1f} us per pick")
            await repository.close()
    smallest, largest = str(min(sizes)), str(max(sizes))
    ratio = results[largest]["pick_us"] / results[smallest]["pick_us"]
    print(f"sqlite  ratio {int(largest):,} / {int(smallest):,} stocks: {ratio:.2f}")
    report = {"adapter": "sqlite", "results": results, "ratio_largest_to_smallest": ratio}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--picks", type=int, default=20_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.picks, args.output))

"""Hostile images: what 25-megapixel uploads cost the event loop and the memory of a replica,
before and after the image workers (bounded threads, memory budget, strip-wise reduction).

Three measurements, each with its reference in the same run:

1. Event loop: a ticker coroutine every 5 ms beside ``--uploaders`` inspections of large
   PNGs, first run on the loop itself (before), then through ``ImageWorkers`` (after); the
   p99 of the ticker's lateness of each, and their ratio.
2. Memory of one process resizing ``--images`` large images of five kinds (RGBA, RGB and
   palette PNG, GIF, JPEG), in a fresh child process each: before, two threads converting
   each whole image at once with glibc's default allocator settings; after, ``ImageWorkers``
   with the default settings. The peak (VmHWM) above the child's baseline, and the ratio.
3. The stack (``stockday up``): stock-symbol's GET p99 idle and while the uploaders upload
   (ratio), and every logo-resizer replica's peak RSS through ``--images`` logos.

    uv run python bench/hostile_images.py [--images 20] [--uploaders 4] [--reads 300]
                                          [--side 5000] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import (
    RESULTS_DIR,
    RunningStack,
    command_line,
    format_table,
    percentile,
    print_targets,
    target,
    warn_if_busy,
    write_report,
)

from stockday.logos import memory as logo_memory
from stockday.logos.images import inspect_upload, resize_logo
from stockday.logos.workers import ImageWorkers
from stockday.runtime.settings import Settings
from tests.support.image_load import (
    Uploaders,
    add_stocks_with_logos,
    peak_rss_mb,
    timed_gets,
    wait_for_logos,
)
from tests.support.images import LARGE_KINDS, large
from tests.support.stack import add_stock

RESULTS = RESULTS_DIR / "hostile_images.json"
MAX_P99_MS = 50.0
MAX_PEAK_RSS_MB = 200.0
TICK_SECONDS = 0.005
LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 25_000_000}


def image_set(args: argparse.Namespace) -> list[bytes]:
    kinds = LARGE_KINDS
    return [large(kinds[n % len(kinds)], n // len(kinds), args.side) for n in range(args.images)]


# --- 1. the event loop ---------------------------------------------------------------------


async def loop_lateness(work: Callable[[], Awaitable[object]]) -> list[float]:
    """How late a 5 ms ticker wakes while ``work`` runs, in seconds, one value per tick."""
    late: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            late.append(max(0.0, time.perf_counter() - started - TICK_SECONDS))

    ticking = asyncio.create_task(ticker())
    await work()
    done.set()
    await ticking
    return late


async def inspect_on_the_loop(uploads: list[bytes]) -> None:
    async def one(data: bytes) -> None:
        await asyncio.sleep(0)
        inspect_upload(data, **LIMITS)

    await asyncio.gather(*(one(data) for data in uploads))


async def inspect_in_workers(uploads: list[bytes]) -> None:
    settings = Settings()
    workers = ImageWorkers(
        threads=settings.image_threads, budget_bytes=settings.image_memory_budget_bytes
    )
    await asyncio.gather(*(workers.inspect(data, **LIMITS) for data in uploads))


def measure_loop(args: argparse.Namespace) -> dict[str, Any]:
    uploads = [large("png_rgba", seed, args.side) for seed in range(args.uploaders)]
    before = asyncio.run(loop_lateness(lambda: inspect_on_the_loop(uploads)))
    after = asyncio.run(loop_lateness(lambda: inspect_in_workers(uploads)))
    return {
        "before_p99_ms": percentile(before, 99) * 1000,
        "after_p99_ms": percentile(after, 99) * 1000,
        "before_ticks": len(before),
        "after_ticks": len(after),
    }


# --- 2. memory of one process --------------------------------------------------------------


def resize_before(paths: list[Path]) -> None:
    """Two threads, each image converted whole (one strip), glibc as it comes."""
    logo_memory._STRIP_PIXELS = 10**12  # type: ignore[misc]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in pool.map(
            lambda p: resize_logo(p.read_bytes(), max_side=256, max_pixels=LIMITS["max_pixels"]),
            paths,
        ):
            pass


def resize_after(paths: list[Path]) -> None:
    settings = Settings()
    workers = ImageWorkers(
        threads=settings.image_threads, budget_bytes=settings.image_memory_budget_bytes
    )

    async def all_of_them() -> None:
        gate = asyncio.Semaphore(2)  # the consumer's jobs in hand at once

        async def one(path: Path) -> None:
            async with gate:
                await workers.resize(
                    path.read_bytes(), max_side=256, max_pixels=LIMITS["max_pixels"]
                )

        await asyncio.gather(*(one(path) for path in paths))

    asyncio.run(all_of_them())


def child(strategy: str, directory: Path) -> None:
    """Run in a fresh process: resize every image in ``directory``; print the peaks as JSON."""
    paths = sorted(directory.iterdir())
    import stockday.logo_resizer.consumer  # noqa: F401  (the service's imports, as deployed)

    baseline = peak_rss_mb_self()
    started = time.perf_counter()
    (resize_before if strategy == "before" else resize_after)(paths)
    seconds = time.perf_counter() - started
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak_rss_mb_self(), "seconds": seconds}))


def peak_rss_mb_self() -> float:
    return peak_rss_mb(os.getpid())


def measure_process(args: argparse.Namespace, images: list[bytes]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hostile-images-") as tmp:
        for index, data in enumerate(images):
            (Path(tmp) / f"{index:03d}").write_bytes(data)
        for strategy in ("before", "after"):
            run = subprocess.run(
                [sys.executable, __file__, "--child", strategy, tmp],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            measured = json.loads(run.stdout.strip().splitlines()[-1])
            measured["above_baseline_mb"] = measured["peak_mb"] - measured["baseline_mb"]
            results[strategy] = measured
    return results


# --- 3. the stack --------------------------------------------------------------------------


def measure_stack(args: argparse.Namespace, tmp: Path, images: list[bytes]) -> dict[str, Any]:
    uploads = [large("png_rgba", seed, args.side) for seed in range(args.uploaders)]
    with RunningStack(tmp / "data") as stack, stack.client(stack.symbol) as api:
        api.timeout = 60.0
        add_stock(api, "CALM")
        idle = timed_gets(api, "/api/stocks/CALM", args.reads)
        with Uploaders(stack.symbol, uploads, max_each=1000) as uploaders:
            uploaders.wait_for_answers(args.uploaders, timeout=300)
            before = uploaders.answered()
            busy = timed_gets(api, "/api/stocks/CALM", args.reads)
            during = uploaders.answered() - before
        resizers = stack.consumer_pids("logo-resizer")
        symbols = add_stocks_with_logos(api, images, "HUGE")
        states = wait_for_logos(api, symbols, timeout=600)
        if stack.consumer_pids("logo-resizer") != resizers:
            raise RuntimeError("a logo-resizer restarted: its peak is lost")
        peaks = {str(pid): peak_rss_mb(pid) for pid in resizers}
    return {
        "idle_p99_ms": percentile(idle, 99) * 1000,
        "busy_p99_ms": percentile(busy, 99) * 1000,
        "uploads_during_reads": during,
        "upload_statuses": sorted({status for _, status in uploaders.answers}),
        "logo_states": sorted(set(states.values())),
        "resizer_peak_rss_mb": peaks,
    }


# --- report --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS)
    parser.add_argument("--images", type=int, default=20, help="large images to resize")
    parser.add_argument("--uploaders", type=int, default=4, help="clients uploading at once")
    parser.add_argument("--reads", type=int, default=300, help="GETs timed, idle and busy")
    parser.add_argument("--side", type=int, default=5000, help="side of the square images, px")
    parser.add_argument("--child", nargs=2, metavar=("STRATEGY", "DIR"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict[str, Any]:
    warn_if_busy()
    images = image_set(args)
    loop = measure_loop(args)
    process = measure_process(args, images)
    with tempfile.TemporaryDirectory(prefix="hostile-stack-") as tmp:
        stack = measure_stack(args, Path(tmp), images)
    ratios = {
        "loop_p99_before_over_after": loop["before_p99_ms"] / max(loop["after_p99_ms"], 1e-3),
        "process_peak_before_over_after": process["before"]["above_baseline_mb"]
        / max(process["after"]["above_baseline_mb"], 1e-3),
        "get_p99_busy_over_idle": stack["busy_p99_ms"] / stack["idle_p99_ms"],
    }
    peak = max(stack["resizer_peak_rss_mb"].values())
    print(
        format_table(
            ("", "before", "after", "ratio"),
            [
                (
                    "event loop lateness p99, ms",
                    f"{loop['before_p99_ms']:.1f}",
                    f"{loop['after_p99_ms']:.1f}",
                    f"{ratios['loop_p99_before_over_after']:.1f}",
                ),
                (
                    f"one process, peak above baseline through {args.images} images, MB",
                    f"{process['before']['above_baseline_mb']:.0f}",
                    f"{process['after']['above_baseline_mb']:.0f}",
                    f"{ratios['process_peak_before_over_after']:.2f}",
                ),
            ],
        )
    )
    print()
    print(
        format_table(
            ("stack", "idle", "under uploads", "ratio"),
            [
                (
                    "stock-symbol GET p99, ms",
                    f"{stack['idle_p99_ms']:.1f}",
                    f"{stack['busy_p99_ms']:.1f}",
                    f"{ratios['get_p99_busy_over_idle']:.2f}",
                ),
                ("logo-resizer peak RSS, MB", "", f"{peak:.1f}", ""),
            ],
        )
    )
    targets = [
        target("stock-symbol GET p99 under uploads", stack["busy_p99_ms"], "<", MAX_P99_MS, " ms"),
        target("logo-resizer peak RSS", peak, "<", MAX_PEAK_RSS_MB, " MB"),
    ]
    print()
    print_targets(targets)
    report = {
        "images": args.images,
        "side": args.side,
        "uploaders": args.uploaders,
        "reads": args.reads,
        "event_loop": loop,
        "one_process": process,
        "stack": stack,
        "ratios": ratios,
        "targets": targets,
    }
    return write_report("hostile_images", report, args.output)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.child:
        child(arguments.child[0], Path(arguments.child[1]))
    else:
        main(arguments)

"""Logo pipeline: logos per CPU-second through queue, resize, store and record, against a bare
resize loop over the same images in one process.

1. Bare: ``stockday.logos.images.resize_logo`` over the images in a loop, one thread; its
   logos per CPU-second is the reference.
2. Latency, on an otherwise idle stack: one logo at a time, upload (``POST /api/uploads``),
   create the stock (``POST /api/stocks``), poll ``GET /api/stocks/{symbol}`` until its logo is
   ready. Targets: p50 under 1 s, p99 under 3 s.
3. Throughput: all uploads first (the browser uploads while the user types), then every stock
   created as fast as possible; timed from the first create until queue-worker has recorded
   the last logo (its ``stockday_consumer_messages_total`` counter, read from the replicas'
   health ports), then each stock is checked to be ready. CPU time of every process of the
   stack comes from /proc/<pid>/stat. Target: logos per CPU-second of the consumer processes
   (logo-resizer and queue-worker) at least 70 % of the bare loop's, i.e. 70 % of the bare rate
   per core used.

    uv run python bench/logo_pipeline.py [--replicas 2] [--logos 200] [--latency-samples 20]
                                         [--image-size 1024] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from harness import (
    RESULTS_DIR,
    RunningStack,
    command_line,
    cpu_seconds,
    format_table,
    percentile,
    print_targets,
    stack_processes,
    target,
    warn_if_busy,
    write_report,
)

from stockday.clients.stock_symbol import SymbolClient
from stockday.logos.demo import demo_logo_png
from stockday.logos.images import resize_logo
from stockday.runtime.settings import Settings

RESULTS = RESULTS_DIR / "logo_pipeline.json"
MIN_PER_CORE_RATIO = 0.70
MAX_P50_S = 1.0
MAX_P99_S = 3.0
CREATE_CONCURRENCY = 16
POLL_SECONDS = 0.01
DONE = re.compile(
    r'^stockday_consumer_messages_total\{consumer="queue-worker",outcome="done"\} ([0-9.e+]+)$',
    re.MULTILINE,
)


def make_images(count: int, size: int) -> list[bytes]:
    """Distinct PNG logos (RGBA, generated, as ``stockday seed`` makes them)."""
    return [demo_logo_png(f"IMG{i}", size) for i in range(count)]


def bare_resize(images: Sequence[bytes], logos: int, settings: Settings) -> dict[str, float]:
    """The reference: resize ``logos`` images in a loop in this process, one thread."""

    def resize(data: bytes) -> None:
        resize_logo(data, max_side=settings.logo_max_side, max_pixels=settings.max_upload_pixels)

    resize(images[0])  # warm up: codecs loaded, caches filled
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(logos):
        resize(images[i % len(images)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "logos": logos,
        "wall_s": wall,
        "cpu_s": cpu,
        "logos_per_s": logos / wall,
        "logos_per_cpu_s": logos / cpu,
        "ms_per_logo": wall / logos * 1e3,
    }


async def upload(symbols: SymbolClient, image: bytes) -> str:
    return await symbols.upload_file("logo.png", image, "image/png")


async def create(symbols: SymbolClient, symbol: str, upload_id: str) -> None:
    await symbols.create_stock(
        symbol=symbol,
        name=f"Benchmark {symbol}",
        upload_id=upload_id,
        idempotency_key=uuid.uuid4().hex,
    )


async def logo_state(symbols: SymbolClient, symbol: str) -> str:
    stock = await symbols.get_stock(symbol)
    if stock is None:
        raise RuntimeError(f"{symbol} is gone")
    return stock.logo.state.value


async def upload_to_ready(symbols: SymbolClient, symbol: str, image: bytes) -> float:
    """Seconds from the start of the upload until the stock's logo is ready."""
    started = time.perf_counter()
    await create(symbols, symbol, await upload(symbols, image))
    deadline = started + 60
    while time.perf_counter() < deadline:
        state = await logo_state(symbols, symbol)
        if state == "ready":
            return time.perf_counter() - started
        if state == "failed":
            raise RuntimeError(f"the logo of {symbol} failed")
        await asyncio.sleep(POLL_SECONDS)
    raise TimeoutError(f"the logo of {symbol} was not ready within 60 s")


async def recorded_logos(client: httpx.AsyncClient, ports: Sequence[int]) -> float:
    """Messages queue-worker has done so far, over all its replicas."""
    total = 0.0
    for port in ports:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        total += sum(float(value) for value in DONE.findall(text))
    return total


def stack_cpu(pids: dict[int, str]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:  # exited (it would be restarted, and its CPU is lost to us)
            continue
    return seconds


async def throughput(stack: RunningStack, images: Sequence[bytes], logos: int) -> dict[str, Any]:
    worker_ports = [replica.port for replica in stack.replicas_of("queue-worker")]
    services = {p.pid: p.service for p in stack_processes(stack)}
    limits = httpx.Limits(max_connections=CREATE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=stack.symbol, timeout=60, limits=limits) as client:
        api = SymbolClient(client, timeout_seconds=60)
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def gated_upload(image: bytes) -> str:
            async with gate:
                return await upload(api, image)

        async def gated_create(symbol: str, upload_id: str) -> None:
            async with gate:
                await create(api, symbol, upload_id)

        tickers = [f"T{i:05d}" for i in range(logos)]
        upload_ids = await asyncio.gather(
            *(gated_upload(images[i % len(images)]) for i in range(logos))
        )
        baseline = await recorded_logos(client, worker_ports)
        cpu_before = stack_cpu(services)
        started = time.perf_counter()
        await asyncio.gather(
            *(gated_create(s, u) for s, u in zip(tickers, upload_ids, strict=True))
        )
        created = time.perf_counter() - started
        deadline = started + 60 + logos
        while await recorded_logos(client, worker_ports) < baseline + logos:
            if time.perf_counter() > deadline:
                raise TimeoutError("the pipeline did not record every logo in time")
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        cpu_after = stack_cpu(services)
        states = await asyncio.gather(*(logo_state(api, s) for s in tickers))
    not_ready = sum(state != "ready" for state in states)
    by_service: dict[str, float] = {}
    for pid, after in cpu_after.items():
        if pid in cpu_before:
            service = services[pid]
            by_service[service] = by_service.get(service, 0.0) + after - cpu_before[pid]
    consumer_cpu = by_service.get("logo-resizer", 0.0) + by_service.get("queue-worker", 0.0)
    stack_total = sum(by_service.values())
    return {
        "logos": logos,
        "create_s": created,
        "wall_s": wall,
        "logos_per_s": logos / wall,
        "not_ready": not_ready,
        "cpu_s_by_service": by_service,
        "consumer_cpu_s": consumer_cpu,
        "stack_cpu_s": stack_total,
        "consumer_cores_used": consumer_cpu / wall,
        "logos_per_consumer_cpu_s": logos / consumer_cpu if consumer_cpu else 0.0,
        "logos_per_stack_cpu_s": logos / stack_total if stack_total else 0.0,
    }


async def measure_stack(
    stack: RunningStack, images: Sequence[bytes], args: argparse.Namespace
) -> tuple[list[float], dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.symbol, timeout=30) as client:
        api = SymbolClient(client, timeout_seconds=30)
        for i in range(2):  # warm up every step of the pipeline, not measured
            await upload_to_ready(api, f"W{i:04d}", images[i % len(images)])
        latencies = [
            await upload_to_ready(api, f"L{i:04d}", images[i % len(images)])
            for i in range(args.latency_samples)
        ]
    return latencies, await throughput(stack, images, args.logos)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS, "replicas of each service")
    parser.add_argument("--logos", type=int, default=200, help="logos in the throughput run")
    parser.add_argument("--latency-samples", type=int, default=20, help="one-at-a-time logos")
    parser.add_argument("--image-size", type=int, default=1024, help="side of the uploads, px")
    parser.add_argument("--distinct-images", type=int, default=8, help="different images used")
    args = parser.parse_args(argv)
    if min(args.logos, args.latency_samples, args.distinct_images) < 1:
        parser.error("--logos, --latency-samples and --distinct-images must be positive")
    return args


def main(args: argparse.Namespace) -> dict[str, Any]:
    warn_if_busy()
    settings = Settings()
    images = make_images(args.distinct_images, args.image_size)
    bare = bare_resize(images, args.logos, settings)
    print(
        f"bare resize      {bare['logos_per_s']:7.1f} logos/s   "
        f"{bare['logos_per_cpu_s']:7.1f} logos per CPU-second"
    )
    with (
        tempfile.TemporaryDirectory(prefix="logo-pipeline-") as tmp,
        RunningStack(Path(tmp) / "data", replicas=args.replicas) as stack,
    ):
        latencies, pipeline = asyncio.run(measure_stack(stack, images, args))
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    per_core = pipeline["logos_per_consumer_cpu_s"] / bare["logos_per_cpu_s"]
    per_stack_core = pipeline["logos_per_stack_cpu_s"] / bare["logos_per_cpu_s"]
    print(
        f"pipeline         {pipeline['logos_per_s']:7.1f} logos/s   "
        f"{pipeline['logos_per_consumer_cpu_s']:7.1f} logos per consumer CPU-second "
        f"({pipeline['consumer_cores_used']:.2f} cores used)"
    )
    print(f"upload to ready  p50 {p50 * 1e3:.0f} ms   p99 {p99 * 1e3:.0f} ms")
    print()
    print(
        format_table(
            ("service", "CPU s during the throughput run"),
            [(s, f"{c:.2f}") for s, c in sorted(pipeline["cpu_s_by_service"].items())],
        )
    )
    print()
    print(
        format_table(
            ("ratio", "value"),
            [
                ("pipeline / bare, logos per CPU-second (consumers)", f"{per_core:.3f}"),
                ("pipeline / bare, logos per CPU-second (whole stack)", f"{per_stack_core:.3f}"),
                (
                    "pipeline / bare, logos per second (wall)",
                    f"{pipeline['logos_per_s'] / bare['logos_per_s']:.3f}",
                ),
                ("upload-to-ready p50 / bare resize", f"{p50 * 1e3 / bare['ms_per_logo']:.1f}"),
            ],
        )
    )
    targets = [
        target("logos per consumer CPU-s / bare", per_core, ">=", MIN_PER_CORE_RATIO),
        target("upload-to-ready p50", p50, "<", MAX_P50_S, " s"),
        target("upload-to-ready p99", p99, "<", MAX_P99_S, " s"),
        target("logos not ready", pipeline["not_ready"], "<=", 0),
    ]
    print()
    print_targets(targets)
    report = {
        "replicas": args.replicas,
        "images": {
            "distinct": len(images),
            "size_px": args.image_size,
            "format": "PNG, RGBA (stockday.logos.demo)",
            "average_bytes": sum(map(len, images)) / len(images),
            "logo_max_side": settings.logo_max_side,
        },
        "bare": bare,
        "pipeline": pipeline,
        "latency": {
            "samples": len(latencies),
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max(latencies),
            "values_s": latencies,
        },
        "ratios": {
            "per_core_consumers": per_core,
            "per_core_whole_stack": per_stack_core,
            "wall_rate": pipeline["logos_per_s"] / bare["logos_per_s"],
            "latency_p50_to_bare_resize": p50 * 1e3 / bare["ms_per_logo"],
        },
        "targets": targets,
    }
    return write_report("logo_pipeline", report, args.output)


if __name__ == "__main__":
    main(parse_args())

"""Page view: the full home-page path, through the site's port and straight at the replicas,
against a hello-world app.

Runs wrk at a fixed concurrency against a hello-world FastAPI page (``bench/hello_app.py``
under ``uvicorn --workers R``, R the replica count), then against ``/`` of a seeded
``stockday up`` stack (frontend -> stock-symbol random pick -> price from the cache -> rendered
page): once at the frontend replicas' own ports (the same connections shared out among them, no
balancer), once through the site's port, where HAProxy balances over them. Reports requests/s,
p50 and p99 and their ratios. Targets: through the site, at least 40 % of the hello-world
throughput and 85 % of the replicas' own ports, p99 under 25 ms.

    uv run python bench/page_view.py [--replicas 2] [--connections 32] [--duration 30]
                                     [--warmup 5] [--profile] [--output FILE]

``--profile`` then runs one more load with py-spy attached to every frontend and stock-symbol
replica (not during the measured runs: sampling costs CPU) and writes their top functions next
to the results file.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from harness import (
    RESULTS_DIR,
    HelloWorldServer,
    RunningStack,
    WrkResult,
    command_line,
    format_table,
    load_section,
    pids_of,
    print_targets,
    run_wrk,
    run_wrk_spread,
    target,
    warn_if_busy,
    write_report,
    wrk_command,
)

from stockday.cli.seed import DEMO_STOCKS

RESULTS = RESULTS_DIR / "page_view.json"
MIN_THROUGHPUT_RATIO = 0.40
MIN_BALANCER_RATIO = 0.85
MAX_P99_MS = 25.0
TOP_FUNCTIONS = 25


def measure(urls: list[str], args: argparse.Namespace, label: str) -> WrkResult:
    """wrk at ``urls``: one URL, or its connections shared out among several."""
    load = {"threads": args.threads, "connections": args.connections}
    if args.warmup > 0:
        run_wrk_spread(urls, **load, seconds=args.warmup)
    result = run_wrk_spread(urls, **load, seconds=args.duration)
    print(
        f"{label:<12} {result.requests_per_second:9.0f} req/s   p50 {result.p50_ms:7.2f} ms   "
        f"p99 {result.p99_ms:7.2f} ms   errors {result.errors}   "
        f"{result.bytes_per_response / 1024:.1f} KiB per response"
    )
    return result


def row(label: str, result: WrkResult) -> tuple[object, ...]:
    return (
        label,
        f"{result.requests_per_second:.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        result.errors,
    )


def ratio_row(result: WrkResult, reference: WrkResult) -> tuple[object, ...]:
    return (
        "ratio",
        f"{result.requests_per_second / reference.requests_per_second:.3f}",
        f"{result.p50_ms / reference.p50_ms:.2f}",
        f"{result.p99_ms / reference.p99_ms:.2f}",
        "",
    )


def check_home_page(stack: RunningStack) -> None:
    """The page under load is the real one: 200 and a seeded stock on it."""
    page = httpx.get(stack.frontend + "/", timeout=10.0)
    page.raise_for_status()
    if not any(symbol in page.text for symbol, _ in DEMO_STOCKS):
        raise SystemExit("the home page shows none of the seeded stocks")


# --- profiling -----------------------------------------------------------------------------


def py_spy_command() -> list[str] | None:
    found = shutil.which("py-spy")
    if found:
        return [found]
    if importlib.util.find_spec("py_spy") is not None:
        return [sys.executable, "-m", "py_spy"]
    return None


def top_functions(collapsed: str) -> dict[str, list[tuple[str, int]]]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    return {
        "self": own.most_common(TOP_FUNCTIONS),
        "inclusive": inclusive.most_common(TOP_FUNCTIONS),
    }


def profile(stack: RunningStack, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    command = py_spy_command()
    if command is None:
        message = "py-spy is not installed (uv tool install py-spy): --profile skipped"
        print(message)
        return {"skipped": message}
    targets = [
        (service, pid)
        for service in ("frontend", "stock-symbol")
        for pid in pids_of(stack, service)
    ]
    seconds = max(2, round(args.duration))
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = []
    for service, pid in targets:
        raw = out_dir / f"page_view_profile_{service}_{pid}.txt"
        recorders.append(
            (
                service,
                pid,
                raw,
                subprocess.Popen(
                    [
                        *command,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(seconds),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--output",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                ),
            )
        )
    run_wrk(
        stack.frontend + "/",
        threads=args.threads,
        connections=args.connections,
        seconds=seconds,
    )
    summary: dict[str, Any] = {}
    report_lines = []
    for service, pid, raw, recorder in recorders:
        _, err = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0 or not raw.exists():
            summary[f"{service}/{pid}"] = {"error": err.decode(errors="replace").strip()}
            continue
        tops = top_functions(raw.read_text())
        summary[f"{service}/{pid}"] = {"raw": str(raw), **tops}
        report_lines.append(f"== {service} worker {pid}: top functions by own samples")
        report_lines += [f"{count:8d}  {frame}" for frame, count in tops["self"]]
        report_lines.append(f"== {service} worker {pid}: top functions by inclusive samples")
        report_lines += [f"{count:8d}  {frame}" for frame, count in tops["inclusive"]]
        report_lines.append("")
    top_file = out_dir / "page_view_profile_top.txt"
    top_file.write_text("\n".join(report_lines) + "\n")
    print(f"profile: top functions written to {top_file}")
    return {"top_file": str(top_file), "workers": summary}


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS, "replicas per service")
    parser.add_argument("--profile", action="store_true", help="profile workers with py-spy")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=float, default=30, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before it")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict[str, Any]:
    wrk_command()  # fail early, before starting anything
    warn_if_busy()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"{args.replicas} replicas per service"
    )
    with HelloWorldServer(workers=args.replicas) as hello:
        hello.wait_for_workers()
        reference = measure([hello.url], args, "hello-world")
    profile_summary: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="page-view-") as tmp,
        RunningStack(Path(tmp) / "data", replicas=args.replicas) as stack,
    ):
        stack.seed()
        check_home_page(stack)
        replicas = [stack.replica_url(r) + "/" for r in stack.replicas_of("frontend")]
        direct = measure(replicas, args, "replicas")
        site = measure([stack.frontend + "/"], args, "site")
        if args.profile:
            profile_summary = profile(stack, args, args.output.parent)
    return report(args, reference, direct, site, profile_summary)


def report(
    args: argparse.Namespace,
    reference: WrkResult,
    direct: WrkResult,
    site: WrkResult,
    profile_summary: dict[str, Any] | None,
) -> dict[str, Any]:
    throughput_ratio = site.requests_per_second / reference.requests_per_second
    balancer_ratio = site.requests_per_second / direct.requests_per_second
    rows: list[tuple[object, ...]] = [row("hello-world", reference)]
    rows += [row("replicas", direct), ratio_row(direct, reference)]
    rows += [row("site", site), ratio_row(site, reference)]
    print()
    print(format_table(("", "req/s", "p50 ms", "p99 ms", "errors"), rows))
    targets = [
        target("site / hello-world", throughput_ratio, ">=", MIN_THROUGHPUT_RATIO),
        target("site / replicas' own ports", balancer_ratio, ">=", MIN_BALANCER_RATIO),
        target(f"site p99 at {args.connections} connections", site.p99_ms, "<", MAX_P99_MS, " ms"),
        target("failed page views", site.errors + direct.errors, "<=", 0),
    ]
    print()
    print_targets(targets)
    result: dict[str, Any] = {
        "load": load_section(args),
        "replicas": args.replicas,
        "reference": {"app": "bench/hello_app.py on uvicorn --workers R", **reference.as_dict()},
        "page_view_direct": {"path": "/", "at": "each frontend replica's port", **direct.as_dict()},
        "page_view": {"path": "/", "at": "the site's port (HAProxy)", **site.as_dict()},
        "ratios": {
            "throughput": throughput_ratio,
            "site_over_direct": balancer_ratio,
            "direct_throughput": direct.requests_per_second / reference.requests_per_second,
            "p50_latency": site.p50_ms / reference.p50_ms,
            "p99_latency": site.p99_ms / reference.p99_ms,
        },
        "targets": targets,
    }
    if profile_summary is not None:
        result["profile"] = profile_summary
    return write_report("page_view", result, args.output)


if __name__ == "__main__":
    main(parse_args())

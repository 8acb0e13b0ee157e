"""Footprint: resident memory of every replica and time from ``stockday up`` to all-ready,
against a hello-world app on the same server software and worker count.

Each run starts ``python -m stockday up`` on free ports and takes two times to ready: what
``up`` prints ("ready in X s", from its own start) and what is seen from outside (from launching
the process until that line appears, which adds the interpreter's start and imports). The last
run then reads VmRSS (and PSS, shared pages divided among their users) from /proc of every
process under ``up`` (uvicorn masters, their workers, the consumers) at ready, and again after
seeding, waiting for the seeded logos and serving page views. The reference is
``bench/hello_app.py`` under uvicorn with the same ``--workers``: its time to first answer and
its workers' RSS after as many requests. Targets: every replica (a uvicorn worker or a consumer
process) under 80 MB, all-ready under 5 s.

    uv run python bench/footprint.py [--replicas 2] [--runs 3] [--requests 200]
                                     [--output FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    RESULTS_DIR,
    HelloWorldServer,
    RunningStack,
    StackProcess,
    command_line,
    format_table,
    print_targets,
    pss_kb,
    rss_kb,
    stack_processes,
    target,
    warn_if_busy,
    write_report,
)

RESULTS = RESULTS_DIR / "footprint.json"
MAX_REPLICA_MB = 80.0
MAX_READY_S = 5.0


def memory(processes: list[StackProcess]) -> dict[int, dict[str, Any]]:
    found = {}
    for p in processes:
        try:
            pss = pss_kb(p.pid)
            found[p.pid] = {
                "service": p.service,
                "role": p.role,
                "rss_mb": rss_kb(p.pid) / 1024,
                "pss_mb": pss / 1024 if pss is not None else None,
                "command": p.command[:160],
            }
        except OSError:
            continue
    return found


def page_views(url: str, count: int) -> None:
    with httpx.Client(timeout=10.0) as client:
        for _ in range(count):
            client.get(url).raise_for_status()


def wait_for_logos(stack: RunningStack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.symbol, timeout=10.0) as client:
        while time.monotonic() < deadline:
            items = client.get("/api/stocks", params={"limit": 200}).json()["items"]
            if items and all(item["logo"]["state"] == "ready" for item in items):
                return
            time.sleep(0.1)
    raise TimeoutError("the seeded logos were not ready in time")


def measure_stack(args: argparse.Namespace, tmp: Path, run: int) -> dict[str, Any]:
    with RunningStack(tmp / f"data-{run}", replicas=args.replicas) as stack:
        measured: dict[str, Any] = {
            "ready_line_s": stack.ready_line_seconds,
            "printed_ready_s": stack.printed_ready_seconds,
        }
        if run == args.runs - 1:
            processes = stack_processes(stack)
            measured["at_ready"] = memory(processes)
            stack.seed()
            wait_for_logos(stack)
            page_views(stack.frontend + "/", args.requests)
            measured["after_traffic"] = memory(stack_processes(stack))
    return measured


def measure_hello(args: argparse.Namespace, run: int) -> dict[str, Any]:
    with HelloWorldServer(workers=args.replicas) as hello:
        measured: dict[str, Any] = {"startup_s": hello.startup_seconds}
        if run == args.runs - 1:
            workers = hello.wait_for_workers()
            page_views(hello.url, args.requests)
            measured["worker_rss_mb"] = [rss_kb(pid) / 1024 for pid in workers]
            # With one worker, uvicorn serves in its own process: there is no master.
            measured["master_rss_mb"] = rss_kb(hello.pid) / 1024 if args.replicas > 1 else None
    return measured


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS, "replicas of each service")
    parser.add_argument("--runs", type=int, default=3, help="stack starts timed (median)")
    parser.add_argument("--requests", type=int, default=200, help="page views before memory")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(args: argparse.Namespace) -> dict[str, Any]:
    warn_if_busy()
    stack_runs, hello_runs = [], []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        for run in range(args.runs):
            hello_runs.append(measure_hello(args, run))
            stack_runs.append(measure_stack(args, Path(tmp), run))
            printed = stack_runs[-1]["printed_ready_s"]
            print(
                f"run {run + 1}: stockday up ready after {stack_runs[-1]['ready_line_s']:.2f} s "
                f"(it printed {printed} s); hello-world answered after "
                f"{hello_runs[-1]['startup_s']:.2f} s",
                flush=True,
            )
    last, hello = stack_runs[-1], hello_runs[-1]
    ready_line_s = statistics.median(r["ready_line_s"] for r in stack_runs)
    printed_values = [r["printed_ready_s"] for r in stack_runs if r["printed_ready_s"] is not None]
    printed_s = statistics.median(printed_values) if printed_values else float("nan")
    hello_startup_s = statistics.median(r["startup_s"] for r in hello_runs)

    rows = []
    for pid, after in sorted(
        last["after_traffic"].items(), key=lambda kv: (kv[1]["service"], kv[1]["role"], kv[0])
    ):
        at_ready = last["at_ready"].get(pid, {})
        rows.append(
            (
                after["service"],
                after["role"],
                pid,
                f"{at_ready['rss_mb']:.1f}" if at_ready else "-",
                f"{after['rss_mb']:.1f}",
                f"{after['pss_mb']:.1f}" if after["pss_mb"] is not None else "-",
            )
        )
    print()
    print(
        format_table(
            ("service", "process", "pid", "RSS MB at ready", "RSS MB after traffic", "PSS MB"),
            rows,
        )
    )
    replicas = [m for m in last["after_traffic"].values() if m["role"] == "replica"]
    by_service: dict[str, dict[str, float]] = {}
    for m in replicas:
        entry = by_service.setdefault(m["service"], {"max_rss_mb": 0.0, "replicas": 0})
        entry["max_rss_mb"] = max(entry["max_rss_mb"], m["rss_mb"])
        entry["replicas"] += 1
    max_replica_mb = max(m["rss_mb"] for m in replicas)
    total_rss_mb = sum(m["rss_mb"] for m in last["after_traffic"].values())
    pss_values = [m["pss_mb"] for m in last["after_traffic"].values()]
    total_pss_mb = sum(pss_values) if None not in pss_values else None
    hello_worker_mb = max(hello["worker_rss_mb"])
    print()
    print(
        format_table(
            ("", "stockday", "hello-world", "ratio"),
            [
                (
                    "largest replica RSS, MB",
                    f"{max_replica_mb:.1f}",
                    f"{hello_worker_mb:.1f}",
                    f"{max_replica_mb / hello_worker_mb:.2f}",
                ),
                (
                    "time to ready (outside), s",
                    f"{ready_line_s:.2f}",
                    f"{hello_startup_s:.2f}",
                    f"{ready_line_s / hello_startup_s:.2f}",
                ),
                ("time to ready (printed by up), s", f"{printed_s:.2f}", "", ""),
                (
                    "all processes RSS / PSS, MB",
                    f"{total_rss_mb:.0f} / "
                    + (f"{total_pss_mb:.0f}" if total_pss_mb is not None else "-"),
                    "",
                    "",
                ),
            ],
        )
    )
    targets = [
        target("largest replica RSS", max_replica_mb, "<", MAX_REPLICA_MB, " MB"),
        target("all-ready, printed by up", printed_s, "<", MAX_READY_S, " s"),
        target("all-ready, from process start", ready_line_s, "<", MAX_READY_S, " s"),
    ]
    print()
    print_targets(targets)
    report = {
        "replicas": args.replicas,
        "runs": args.runs,
        "requests_before_memory": args.requests,
        "startup": {
            "ready_line_s": [r["ready_line_s"] for r in stack_runs],
            "printed_ready_s": [r["printed_ready_s"] for r in stack_runs],
            "median_ready_line_s": ready_line_s,
            "median_printed_ready_s": printed_s,
        },
        "memory": {
            "processes_at_ready": {str(k): v for k, v in last["at_ready"].items()},
            "processes_after_traffic": {str(k): v for k, v in last["after_traffic"].items()},
            "by_service": by_service,
            "max_replica_rss_mb": max_replica_mb,
            "total_rss_mb": total_rss_mb,
            "total_pss_mb": total_pss_mb,
        },
        "reference": {
            "app": "bench/hello_app.py on uvicorn",
            "startup_s": [r["startup_s"] for r in hello_runs],
            "median_startup_s": hello_startup_s,
            "worker_rss_mb": hello["worker_rss_mb"],
            "master_rss_mb": hello["master_rss_mb"],
        },
        "ratios": {
            "max_replica_rss_to_hello_worker": max_replica_mb / hello_worker_mb,
            "ready_to_hello_startup": ready_line_s / hello_startup_s,
        },
        "targets": targets,
    }
    return write_report("footprint", report, args.output)


if __name__ == "__main__":
    main(parse_args())

"""What every benchmark shares: a stack on free loopback ports, a hello-world reference server,
wrk and its output, the processes of a stack read from /proc, and the results file.

The stack, free ports and the waits come from ``tests.support``, shared with the tests. The
benchmark scripts import this module by name (``python bench/<script>.py`` puts ``bench/`` on
the path, and this module puts the repository root there for ``tests.support``); the tests
import it as ``bench.harness``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stockday.devstack import processes as procfs
from stockday.devstack.emulator import stop_process

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

from tests.support.ports import HOST, free_port, wait_for_http  # noqa: E402
from tests.support.servers import Started  # noqa: E402
from tests.support.stack import RunningStack, free_port_base  # noqa: E402

__all__ = ["RunningStack", "free_port", "free_port_base"]

RESULTS_DIR = BENCH_DIR / "results"
LOAD_AT_START = os.getloadavg()  # the benchmarks import this module first thing


# --- processes, from /proc -----------------------------------------------------------------


def cmdline(pid: int) -> str:
    """The command line as one string; OSError if the process is gone."""
    raw = procfs.command_line(pid)
    if not raw:
        raise ProcessLookupError(pid)
    return raw.replace(b"\0", b" ").decode().strip()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) so far; OSError if it is gone."""
    return procfs.cpu_seconds(pid)


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int | None:
    """Proportional set size in kB (shared pages divided among their users), if readable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


@dataclass(frozen=True)
class StackProcess:
    """One process of a running stack: which service it belongs to and what it is there."""

    pid: int
    service: str
    # "replica" (an HTTP server or a consumer, one process each) or "gateway" (HAProxy)
    role: str
    command: str
    name: str = ""  # the stack's name for it: frontend-a0, haproxy

    @property
    def is_replica(self) -> bool:
        return self.role == "replica"


def stack_processes(stack: RunningStack) -> list[StackProcess]:
    """Every process `stockday up` runs now, as its state file records them."""
    found: list[StackProcess] = []
    for child in stack.state()["children"]:
        pid = child.get("pid")
        if not pid:
            continue
        try:
            command = cmdline(int(pid))
        except OSError:
            continue
        role = "gateway" if child["service"] == "haproxy" else "replica"
        found.append(StackProcess(int(pid), child["service"], role, command, child["name"]))
    return found


def pids_of(stack: RunningStack, service: str) -> list[int]:
    return [p.pid for p in stack_processes(stack) if p.service == service]


def uvicorn_workers(master: int) -> list[int]:
    """The live workers of a uvicorn master (multiprocessing "spawn" children; its other
    child, multiprocessing's resource tracker, is not one)."""
    return sorted(
        child
        for child in procfs.children(master)
        if procfs.alive(child) and b"spawn_main" in procfs.command_line(child)
    )


# --- the reference server ------------------------------------------------------------------


class HelloWorldServer(Started):
    """The reference: ``bench/hello_app.py`` on uvicorn with ``workers`` worker processes."""

    def __init__(self, *, workers: int, port: int | None = None) -> None:
        self.workers = workers
        self.port = port if port is not None else free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0  # from launch to the first 200

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        # The same uvicorn options as the stack's services (stockday.devstack.supervisor).
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(BENCH_DIR),
            "hello_app:app",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        launched = time.monotonic()
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        process = self.process
        wait_for_http(self.url, timeout, alive=lambda: process.poll() is None)
        self.startup_seconds = time.monotonic() - launched

    def worker_pids(self) -> list[int]:
        if self.workers == 1:  # uvicorn serves in its own process, no supervisor
            return [self.pid]
        return uvicorn_workers(self.pid)

    def wait_for_workers(self, timeout: float = 30.0) -> list[int]:
        """The workers' pids, once all of them have started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) >= self.workers:
                return pids
            time.sleep(0.05)
        raise TimeoutError(f"{self.workers} hello-world workers did not start")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=20)


# --- wrk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    latency_ms: dict[str, float]  # percentile ("50", "75", "90", "99") -> milliseconds
    requests: int
    seconds: float
    bytes_per_response: float = 0.0
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return self.latency_ms["50"]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["99"]

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "errors": self.errors}


_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_TOTAL = re.compile(
    r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGT]?B) read", re.MULTILINE
)
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(text: str) -> WrkResult:
    """Read throughput, the latency distribution (``--latency``) and errors from wrk's output."""
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {
        match.group(1).removesuffix(".000").removesuffix(".0"): float(match.group(2))
        * _TO_MS[match.group(3)]
        for match in _PERCENTILE.finditer(text)
    }
    if rate is None or total is None or not {"50", "99"} <= percentiles.keys():
        raise ValueError(f"cannot read wrk's output (was --latency given?):\n{text}")
    errors = _SOCKET_ERRORS.search(text)
    non_2xx = _NON_2XX.search(text)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        latency_ms=percentiles,
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _TO_MS[total.group(3)] / 1e3,
        bytes_per_response=(
            float(total.group(4)) * _BYTES[total.group(5)] / max(1, int(total.group(1)))
        ),
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=(
            dict(
                zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)
            )
            if errors
            else {}
        ),
    )


def wrk_command() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    return found


def run_wrk(url: str, *, threads: int, connections: int, seconds: float) -> WrkResult:
    """One wrk run at a fixed number of connections, with its latency distribution."""
    command = [
        wrk_command(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(run.stdout)


def run_wrk_spread(
    urls: Sequence[str], *, threads: int, connections: int, seconds: float
) -> WrkResult:
    """One wrk per URL at the same time, the connections (and threads) shared out among them: the
    load of one wrk spread over several servers without a balancer. Throughput and requests add
    up; each latency percentile is the worst of the runs' (an upper bound of the whole's)."""
    share = max(1, connections // len(urls))
    command = [wrk_command(), f"-t{max(1, threads // len(urls))}", f"-c{share}"]
    command += [f"-d{max(1, round(seconds))}s", "--latency"]
    runs = [
        subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for url in urls
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=seconds + 60)
        if run.returncode != 0:
            raise RuntimeError(f"wrk failed: {err}")
        results.append(parse_wrk(out))
    errors: dict[str, int] = {}
    for result in results:
        for kind, count in result.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + count
    requests = sum(r.requests for r in results)
    return WrkResult(
        requests_per_second=sum(r.requests_per_second for r in results),
        latency_ms={q: max(r.latency_ms[q] for r in results) for q in results[0].latency_ms},
        requests=requests,
        seconds=max(r.seconds for r in results),
        bytes_per_response=sum(r.bytes_per_response * r.requests for r in results)
        / max(requests, 1),
        non_2xx_3xx=sum(r.non_2xx_3xx for r in results),
        socket_errors=errors,
    )


def load_section(args: argparse.Namespace, **more: Any) -> dict[str, Any]:
    """The report's description of the wrk load a benchmark ran (its command-line options)."""
    return {
        "tool": "wrk",
        "threads": args.threads,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        **more,
    }


# --- the command line ---------------------------------------------------------------------


def command_line(
    description: str | None, results: Path, replicas: str | None = None
) -> argparse.ArgumentParser:
    """A benchmark's options: its docstring as help, ``--output`` (where the report goes) and,
    given its help text, ``--replicas``; the benchmark adds its own."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if replicas is not None:
        parser.add_argument("--replicas", type=int, default=2, help=replicas)
    parser.add_argument("--output", type=Path, default=results)
    return parser


# --- numbers and reports -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def target(
    name: str, measured: float, comparison: str, limit: float, unit: str = ""
) -> dict[str, Any]:
    """A target and whether the measured value meets it (``comparison`` is "<", "<=" or ">=")."""
    checks: dict[str, Callable[[float, float], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
    }
    return {
        "name": name,
        "measured": measured,
        "target": f"{comparison} {limit:g}{unit}",
        "pass": checks[comparison](measured, limit),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including how busy it was."""
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in LOAD_AT_START],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def warn_if_busy() -> None:
    load = LOAD_AT_START[0]
    cpus = os.cpu_count() or 1
    if load > cpus / 2:
        print(
            f"note: load average {load:.1f} on {cpus} CPUs before the run: other work shares "
            "this machine, so absolute numbers are noisy (the ratios less so)"
        )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    rows = [
        (t["name"], f"{t['measured']:.3g}", t["target"], "PASS" if t["pass"] else "FAIL")
        for t in targets
    ]
    print(format_table(("target", "measured", "wanted", ""), rows))


def write_report(name: str, report: dict[str, Any], output: Path) -> dict[str, Any]:
    """Write the results JSON (with when and where it was measured) and say where it went."""
    full = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **report,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(full, indent=2) + "\n")
    print(f"results written to {output}")
    return full

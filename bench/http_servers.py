"""HTTP server: uvicorn or granian, one process each, serving the same apps.

The local stack is moving to one single-process server per replica (no ``--workers``), so each
server runs the app with one worker on a free 127.0.0.1 port: uvicorn with the options of the
stack's services (``stockday.runtime.catalog.uvicorn_args``, uvloop and httptools picked
automatically), granian with ``--interface asgi --workers 1 --loop uvloop --http 1 --no-ws``,
its access log off, the same log level and a 10 s kill timeout. The two servers never run at
the same time. wrk (the same threads and connections as ``page_view.py``) measures, after a
warm-up, each server on:

1. ``bench/hello_app.py`` ``GET /``: the ceiling of each server;
2. stock-symbol ``GET /api/stocks/random`` (embedded backend in a temporary data directory,
   a few dozen stocks added through its API first; its prices come from a stock-price started
   with uvicorn);
3. the frontend's ``GET /`` (its stock-symbol and stock-price are started with uvicorn).

During the measured load: the CPU time of the server's processes (granian serves HTTP from a
Rust thread beside the Python one, so one process of it can use more than a core). After it:
the resident memory of the server's process and of any child it runs the app in (psutil), and
whether the app answers from the main process or a child (``/api/ping``'s pid). Before it: the
same requests under both servers (probes, a 5 MB multipart upload sent with a length and
chunked, an upload over the limit, a missing page), compared by status, content type and body
shape. Then SIGTERM, with an upload half sent to stock-symbol: the server must answer it, stop
within 10 s by itself and leave no process behind; its exit status is reported (0, or killed by
the SIGTERM that uvicorn raises again once its shutdown is done). Last, each server's hello
world is SIGKILLed to see whether any child outlives its main process (and still answers on
the port); the survivors are then killed.

With ``--rounds N`` each server is measured N times per app, a fresh process each time, the
order alternating (uvicorn first, then granian first, ...), and the run of highest throughput
is kept: other work on a shared machine only ever slows a run down.

Ratios are granian / uvicorn, measured in one run. The targets are the bar for moving to granian:
at least 10 % more requests/s on both services' paths at equal correctness, no failed request,
clean stops, and nothing left running after its main process is SIGKILLed.

    uv run python bench/http_servers.py [--connections 32] [--duration 30] [--warmup 5]
                                        [--rounds 1] [--threads 2] [--stocks 40]
                                        [--output FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil
from harness import (
    BENCH_DIR,
    RESULTS_DIR,
    WrkResult,
    command_line,
    format_table,
    free_port,
    load_section,
    print_targets,
    run_wrk,
    target,
    warn_if_busy,
    write_report,
    wrk_command,
)
from hello_app import PAGE
from PIL import Image

from stockday.cli.seed import DEMO_STOCKS
from stockday.devstack import processes as procfs
from stockday.devstack.children import die_with_parent
from stockday.runtime import catalog
from tests.support import images
from tests.support.ports import HOST, wait_for_http
from tests.support.servers import Started, local_service_env
from tests.support.stack import GENEROUS_LIMITS, add_stock

RESULTS = RESULTS_DIR / "http_servers.json"
SERVERS = ("uvicorn", "granian")
CANDIDATE = "granian"  # the ratios are CANDIDATE / uvicorn
MIN_SPEEDUP = 1.10  # granian must be this much faster to be worth a change of server
STOP_SECONDS = 10.0  # SIGTERM to exit, at most (the stack's graceful-shutdown limit)
UPLOAD_BYTES = 5 * 1024 * 1024
OVERSIZE_BYTES = 11 * 1024 * 1024  # above STOCKDAY_MAX_UPLOAD_BYTES (10 MiB)
IGNORED_HEADERS = {"date", "server", "content-length", "x-request-id"}


@dataclass(frozen=True)
class App:
    """An ASGI app as both servers load it."""

    key: str
    label: str
    target: str  # "module:attribute"
    path: str  # the path under load
    factory: bool = False
    app_dir: Path | None = None  # put on sys.path (hello_app.py lives in bench/)
    ready_path: str = "/api/ping"


HELLO = App("hello", "hello world", "hello_app:app", "/", app_dir=BENCH_DIR, ready_path="/")
SYMBOL = App(
    "stock-symbol",
    "stock-symbol random",
    catalog.service("stock-symbol").entry,
    "/api/stocks/random",
    factory=True,
)
FRONTEND = App(
    "frontend", "frontend page view", catalog.service("frontend").entry, "/", factory=True
)
APPS = (HELLO, SYMBOL, FRONTEND)
# The services the measured ones call, always on uvicorn (only the key and factory matter).
PRICE_BACKEND = App("stock-price", "stock-price", catalog.service("stock-price").entry, "/", True)
SYMBOL_BACKEND = App("stock-symbol", "stock-symbol", SYMBOL.target, "/", True)


def server_command(server: str, app: App, port: int) -> list[str]:
    """One process, one worker, serving ``app`` on HOST:port."""
    if server == "uvicorn":
        if app.factory:  # exactly the stack's command, without --workers
            return catalog.service_command(app.key, HOST, port)
        assert app.app_dir is not None
        return [
            *(sys.executable, "-m", "uvicorn", "--app-dir", str(app.app_dir), app.target),
            *("--host", HOST, "--port", str(port)),
            *("--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "10"),
        ]
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--workers", "1"),
        *("--host", HOST, "--port", str(port)),
        *("--loop", "uvloop", "--http", "1", "--no-ws"),
        *("--log-level", "warning", "--no-access-log"),
        *("--workers-kill-timeout", "10"),
        *(["--factory"] if app.factory else []),
        *(["--working-dir", str(app.app_dir)] if app.app_dir else []),
        app.target,
    ]


def server_versions() -> dict[str, str]:
    found = {name: metadata.version(name) for name in ("uvicorn", "granian", "uvloop")}
    found["httptools"] = metadata.version("httptools")
    return found


class AppServer(Started):
    """One server process on a free port, in a session of its own; ``stop()`` leaves nothing
    of that session running, whatever happened before."""

    def __init__(
        self, server: str, app: App, env: dict[str, str], log_dir: Path, port: int | None = None
    ) -> None:
        self.server = server
        self.app = app
        self.env = env
        self.port = port if port is not None else free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.command = server_command(server, app, self.port)
        self.log_path = log_dir / f"{app.key}-{server}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Every process seen below the main one, kept as psutil handles: a handle refuses to
        # signal a pid that another process has taken since.
        self.seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills what is left in it
                preexec_fn=die_with_parent,  # safe: this script starts no thread
            )
        process = self.process
        try:
            wait_for_http(
                self.url + self.app.ready_path, timeout, alive=lambda: process.poll() is None
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.server} {self.app.key}: {exc}\n{self.log()}") from exc
        self.children()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def children(self) -> list[int]:
        """The live processes below the main one (and remember them for stop())."""
        try:
            below = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []
        for child in below:
            self.seen.setdefault(child.pid, child)
        return sorted(child.pid for child in below if procfs.alive(child.pid))

    def cpu_seconds(self) -> float:
        """User and system CPU time of the main process and those below it (all threads)."""
        total = 0.0
        for pid in [self.pid, *self.children()]:
            with contextlib.suppress(ProcessLookupError):
                total += procfs.cpu_seconds(pid)
        return total

    def memory(self) -> dict[str, Any]:
        """Resident memory of the main process and of every process below it, in MB."""
        main = psutil.Process(self.pid).memory_info().rss
        below = {}
        for pid in self.children():
            with contextlib.suppress(psutil.Error):
                below[pid] = psutil.Process(pid).memory_info().rss
        sizes = [main, *below.values()]
        return {
            "processes": len(sizes),
            "main_rss_mb": main / 2**20,
            "children_rss_mb": sum(below.values()) / 2**20,
            "total_rss_mb": sum(sizes) / 2**20,
            "largest_rss_mb": max(sizes) / 2**20,
        }

    def terminate(self, in_flight: InFlight | None = None) -> dict[str, Any]:
        """SIGTERM, as a supervisor stops a replica: exit code, seconds, what was left running
        and, given a request begun before the signal, what it was answered."""
        assert self.process is not None
        self.children()
        pending = in_flight.begin(self.port) if in_flight else None
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        answered = pending.finish() if pending else None
        try:
            code: int | None = self.process.wait(
                timeout=max(0.1, STOP_SECONDS - (time.monotonic() - sent))
            )
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - sent
        left = sorted(
            pid for pid, child in self.seen.items() if child.is_running() and procfs.alive(pid)
        )
        return {
            "exit_code": code,
            "exit": exit_meaning(code),
            "seconds": seconds,
            "left_running": left,
            "in_flight_request": answered,
            # Stopped in time by itself, nothing left, and exit 0, or killed by the SIGTERM it
            # raised again after its own shutdown (uvicorn does, so that its parent sees why).
            "clean": code in (0, -signal.SIGTERM)
            and seconds <= STOP_SECONDS
            and not left
            and (answered is None or answered.get("status") == in_flight.status),
        }

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:  # not reaped: its pid is still its group's id
            self.children()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # its session: the main process and below
        for child in self.seen.values():  # any that outlived it or left its group
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.process.wait()


def exit_meaning(code: int | None) -> str:
    if code is None:
        return f"still running after {STOP_SECONDS:g} s"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class InFlight:
    """A request whose headers and first half of its body are sent before SIGTERM, the rest
    after: a server that stops gracefully still answers it."""

    def __init__(self, path: str, content_type: str, body: bytes, status: int) -> None:
        self.path, self.content_type, self.body, self.status = path, content_type, body, status

    def begin(self, port: int) -> PendingRequest:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        half = len(self.body) // 2
        connection = socket.create_connection((HOST, port), timeout=STOP_SECONDS)
        connection.sendall(head + self.body[:half])
        time.sleep(0.3)  # the app has the request and waits for the rest of the body
        return PendingRequest(connection, self.body[half:])


class PendingRequest:
    def __init__(self, connection: socket.socket, rest: bytes) -> None:
        self.connection, self.rest = connection, rest

    def finish(self) -> dict[str, Any]:
        """Send the rest of the body after a pause, read the answer's status line."""
        with self.connection:
            try:
                time.sleep(0.3)
                self.connection.sendall(self.rest)
                received = b""
                while b"\r\n" not in received:
                    data = self.connection.recv(65536)
                    if not data:
                        break
                    received += data
            except OSError as exc:
                return {"error": f"{type(exc).__name__}: {exc}"}
        status = received.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or not status[1].isdigit():
            return {"error": f"no answer (got {received[:60]!r})"}
        return {"status": int(status[1])}


def upload_in_flight() -> InFlight:
    boundary = "bench-in-flight"
    body = b"".join(multipart_body(images.png(300, 150), boundary))
    return InFlight("/api/uploads", f"multipart/form-data; boundary={boundary}", body, status=201)


# --- requests and their answers ------------------------------------------------------------


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not values (null and numbers alike)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None or isinstance(value, int | float):
        return "number-or-null"
    return type(value).__name__


def answer(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "").split(";")[0]
    body: Any
    if content_type == "application/json":
        body = shape(response.json())
    else:  # a page: whole, or not (its length varies with the stock on it)
        text = response.text.strip().lower()
        body = {"html_document": text.startswith("<!doctype html>") and text.endswith("</html>")}
    return {
        "status": response.status_code,
        "content_type": content_type,
        "body_shape": body,
        "headers": sorted(set(response.headers.keys()) - IGNORED_HEADERS),
    }


def noise_png(size: int) -> bytes:
    """A valid PNG of about ``size`` bytes: random RGB pixels do not compress."""
    side = int((size / 3) ** 0.5)
    pixels = random.Random(size).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


def multipart_body(data: bytes, boundary: str, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A multipart/form-data body with one file field, in pieces (sent chunked by httpx)."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield head
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    yield f"\r\n--{boundary}--\r\n".encode()


Check = Callable[[httpx.Client], tuple[httpx.Response, list[str]]]


def get(
    path: str, status: int, expect: Callable[[httpx.Response], list[str]] | None = None
) -> Check:
    def check(client: httpx.Client) -> tuple[httpx.Response, list[str]]:
        response = client.get(path)
        problems = [] if response.status_code == status else [f"status {response.status_code}"]
        if expect is not None and response.status_code == status:
            problems += expect(response)
        return response, problems

    return check


def html_with_symbol(symbols: set[str]) -> Callable[[httpx.Response], list[str]]:
    def expect(response: httpx.Response) -> list[str]:
        problems = []
        if not response.headers.get("content-type", "").startswith("text/html"):
            problems.append(f"content type {response.headers.get('content-type')}")
        if not any(symbol in response.text for symbol in symbols):
            problems.append("no seeded symbol on the page")
        return problems

    return expect


def exact_body(expected: str) -> Callable[[httpx.Response], list[str]]:
    def expect(response: httpx.Response) -> list[str]:
        return [] if response.text == expected else ["body differs from the app's page"]

    return expect


def upload(image: bytes, *, stream: bool) -> Check:
    def check(client: httpx.Client) -> tuple[httpx.Response, list[str]]:
        if stream:  # no Content-Length: Transfer-Encoding: chunked
            boundary = "bench-http-servers"
            response = client.post(
                "/api/uploads",
                content=multipart_body(image, boundary),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
        else:
            response = client.post("/api/uploads", files={"file": ("big.png", image, "image/png")})
        problems = [] if response.status_code == 201 else [f"status {response.status_code}"]
        if response.status_code == 201 and response.json().get("size") != len(image):
            problems.append(f"stored {response.json().get('size')} bytes of {len(image)}")
        return response, problems

    return check


def oversize_upload(size: int) -> Check:
    def check(client: httpx.Client) -> tuple[httpx.Response, list[str]]:
        files = {"file": ("huge.png", b"\0" * size, "image/png")}
        try:
            response = client.post("/api/uploads", files=files)
        except httpx.HTTPError as exc:  # the server may close before the body is sent
            raise CheckError(f"{type(exc).__name__}: {exc}") from exc
        problems = [] if response.status_code == 413 else [f"status {response.status_code}"]
        return response, problems

    return check


class CheckError(Exception):
    """A request that got no answer at all."""


def checks_for(app: App, symbols: set[str]) -> dict[str, Check]:
    if app is HELLO:
        return {"GET /": get("/", 200, exact_body(PAGE)), "GET /missing": get("/missing", 404)}
    probes = {"GET /api/ping": get("/api/ping", 200), "GET /api/ready": get("/api/ready", 200)}
    if app is SYMBOL:
        image = noise_png(UPLOAD_BYTES)
        return {
            **probes,
            "GET /api/stocks/random": get("/api/stocks/random", 200),
            "GET /api/stocks/AAPL": get("/api/stocks/AAPL", 200),
            "GET /api/stocks/NOSUCH": get("/api/stocks/NOSUCH", 404),
            "POST /api/uploads 5 MB": upload(image, stream=False),
            "POST /api/uploads 5 MB chunked": upload(image, stream=True),
            "POST /api/uploads 11 MB (over the limit)": oversize_upload(OVERSIZE_BYTES),
        }
    return {
        **probes,
        "GET /": get("/", 200, html_with_symbol(symbols)),
        "GET /stocks/AAPL": get("/stocks/AAPL", 200, html_with_symbol({"AAPL"})),
        "GET /missing": get("/missing", 404),
    }


def run_checks(server: AppServer, checks: dict[str, Check]) -> dict[str, Any]:
    """Every check once, on one keep-alive connection; what each answered and its problems."""
    answers: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for name, check in checks.items():
            try:
                response, problems = check(client)
            except (CheckError, httpx.HTTPError) as exc:
                answers[name] = {"error": str(exc), "problems": [str(exc)]}
                continue
            answers[name] = {**answer(response), "problems": problems}
    return answers


def compare(answers: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Differences between the servers' answers (status, content type, body shape) and, apart,
    in header names (date, server, length and request id aside)."""
    reference, other = (answers[name] for name in SERVERS)
    differences, headers = [], []
    for check, first in reference.items():
        second = other[check]
        for key in ("error", "status", "content_type", "body_shape"):
            if first.get(key) != second.get(key):
                differences.append(
                    f"{check}: {key} {json.dumps(first.get(key))} under uvicorn, "
                    f"{json.dumps(second.get(key))} under {CANDIDATE}"
                )
        only = {name: set(answers[name][check].get("headers", [])) for name in SERVERS}
        for name, mine in only.items():
            rest = set().union(*(v for k, v in only.items() if k != name))
            if mine - rest:
                headers.append(f"{check}: only {name} sends {', '.join(sorted(mine - rest))}")
    failures = [
        f"{name} {check}: {problem}"
        for name in SERVERS
        for check, observed in answers[name].items()
        for problem in observed["problems"]
    ]
    return {"differences": differences, "header_differences": headers, "failures": failures}


# --- the stack around the services ---------------------------------------------------------


def seed(symbol_url: str, count: int) -> list[str]:
    """The demo stocks and generated ones, ``count`` in all, added through the API."""
    symbols = [symbol for symbol, _ in DEMO_STOCKS][:count]
    symbols += [f"BENCH{i:03d}" for i in range(count - len(symbols))]
    with httpx.Client(base_url=symbol_url, timeout=30.0) as api:
        for symbol in symbols:
            add_stock(api, symbol)
    return symbols


def service_env(data_dir: Path, symbol_url: str, price_url: str) -> dict[str, str]:
    return {
        **local_service_env(data_dir),
        **GENEROUS_LIMITS,  # one load generator sends far more than a visitor would
        "STOCKDAY_SYMBOL_URL": symbol_url,
        "STOCKDAY_PRICE_URL": price_url,
        "PYTHONUNBUFFERED": "1",
    }


# --- measuring -----------------------------------------------------------------------------


def measure(
    server: AppServer, args: argparse.Namespace, label: str
) -> tuple[WrkResult, dict[str, float]]:
    """wrk after a warm-up, and the CPU time the server's processes used during the measured
    run: granian serves HTTP from a thread of its own beside the Python one, so one process
    of it can use more than one core."""
    url = server.url + server.app.path
    if args.warmup > 0:
        run_wrk(url, threads=args.threads, connections=args.connections, seconds=args.warmup)
    before = server.cpu_seconds()
    result = run_wrk(url, threads=args.threads, connections=args.connections, seconds=args.duration)
    cpu = server.cpu_seconds() - before
    usage = {
        "cpu_seconds": cpu,
        "cores_used": cpu / result.seconds,
        "cpu_us_per_request": cpu / max(1, result.requests) * 1e6,
    }
    print(
        f"{label:<30} {result.requests_per_second:9.0f} req/s   p50 {result.p50_ms:7.2f} ms   "
        f"p99 {result.p99_ms:7.2f} ms   errors {result.errors}   "
        f"{usage['cpu_us_per_request']:.0f} us CPU per request, {usage['cores_used']:.2f} cores"
    )
    return result, usage


def serve_and_measure(
    server: AppServer, args: argparse.Namespace, checks: dict[str, Check]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start, check, load, read memory, SIGTERM; the figures and the answers to the checks."""
    with server:
        answers = run_checks(server, checks)
        app_pid = None
        if server.app.ready_path == "/api/ping":
            app_pid = httpx.get(server.url + "/api/ping", timeout=10.0).json()["pid"]
        result, usage = measure(server, args, f"{server.app.key} {server.server}")
        memory = server.memory()
        children = server.children()
        stopped = server.terminate(upload_in_flight() if server.app is SYMBOL else None)
    figures = {
        "path": server.app.path,
        "command": " ".join(server.command).replace(sys.executable, "python"),
        **result.as_dict(),
        "cpu": usage,
        "memory_after_load": memory,
        "processes": {
            "main_pid": server.pid,
            "children": len(children),
            "app_pid": app_pid,
            # Where the app runs: its own /api/ping pid, or for hello world, any child at all.
            "app_in_child_process": (app_pid != server.pid) if app_pid else bool(children),
        },
        "sigterm": stopped,
    }
    return figures, answers


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of highest throughput (other work on the machine only ever slows a run down),
    with every round's figures beside it, and the stops of all rounds: each must be clean."""
    chosen = max(runs, key=lambda run: run["requests_per_second"])
    keys = ("requests_per_second", "p50_ms", "p99_ms", "errors")
    return {
        **chosen,
        "rounds": [
            {
                **{key: run[key] for key in keys},
                "cpu_us_per_request": run["cpu"]["cpu_us_per_request"],
            }
            for run in runs
        ],
        "errors_all_rounds": sum(run["errors"] for run in runs),
        "sigterm_all_rounds": [run["sigterm"] for run in runs],
    }


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    mine, base = figures[CANDIDATE], figures["uvicorn"]
    return {
        "throughput": mine["requests_per_second"] / base["requests_per_second"],
        "p50_latency": mine["p50_ms"] / base["p50_ms"],
        "p99_latency": mine["p99_ms"] / base["p99_ms"],
        "cpu_per_request": mine["cpu"]["cpu_us_per_request"] / base["cpu"]["cpu_us_per_request"],
        "total_rss": mine["memory_after_load"]["total_rss_mb"]
        / base["memory_after_load"]["total_rss_mb"],
    }


def listening_sockets(port: int) -> int:
    """How many sockets listen on HOST:port (any process), from /proc/net/tcp."""
    wanted = f"{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, local_port = fields[1].partition(":")
        if local_port == wanted and fields[3] == "0A" and address in {"0100007F", "00000000"}:
            count += 1
    return count


def wait_until_listening(server: AppServer, timeout: float = 10.0) -> bool:
    """Whether a process of ``server`` listens on its port within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process and server.process.poll() is None:
        for pid in [server.pid, *server.children()]:
            with contextlib.suppress(psutil.Error):
                sockets = psutil.Process(pid).net_connections(kind="tcp")
                if any(
                    c.status == psutil.CONN_LISTEN and c.laddr.port == server.port for c in sockets
                ):
                    return True
        time.sleep(0.05)
    return False


def sigkill_survivors(server_name: str, log_dir: Path) -> dict[str, Any]:
    """SIGKILL the main process of a server (hello world), see what outlives it, then start a
    replacement on the same port, as a supervisor restarting it would."""
    server = AppServer(server_name, HELLO, {**os.environ}, log_dir)
    replacement = AppServer(server_name, HELLO, {**os.environ}, log_dir, port=server.port)
    with server:
        below = server.children()
        os.kill(server.pid, signal.SIGKILL)
        assert server.process is not None
        server.process.wait(timeout=10)
        time.sleep(1.0)  # time for a child to notice its parent is gone, if it looks
        survivors = [pid for pid in below if procfs.alive(pid)]
        still_serves = False
        if survivors:
            with contextlib.suppress(httpx.HTTPError):
                still_serves = httpx.get(server.url + "/", timeout=2.0).status_code == 200
        commands = {
            pid: procfs.command_line(pid).replace(b"\0", b" ").decode() for pid in survivors
        }
        # The survivor answers on the port too: wait for the replacement's own listening socket.
        try:
            with replacement:
                replaced = wait_until_listening(replacement)
                listeners = listening_sockets(server.port)
        except RuntimeError:  # it exited: the port was taken
            replaced, listeners = False, listening_sockets(server.port)
    # stop() has sent SIGKILL to every survivor (by process group and by pid); see them gone.
    deadline = time.monotonic() + 5.0
    while (left := [pid for pid in survivors if procfs.alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {
        "children_before": len(below),
        "survivors": survivors,
        "survivor_commands": commands,
        "survivor_still_answers_on_the_port": still_serves,
        # A replacement binding the port beside a survivor (SO_REUSEPORT) shares its traffic
        # with a process nobody supervises.
        "replacement_started_on_the_port": replaced,
        "sockets_listening_on_the_port_with_the_replacement": listeners,
        "left_after_cleanup": left,
    }


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_line(__doc__, RESULTS)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=float, default=30, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before it")
    parser.add_argument("--stocks", type=int, default=40, help="stocks added before the load")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measurements of each server per app, the order alternating; the best is kept",
    )
    return parser.parse_args(argv)


def row(label: str, result: dict[str, Any]) -> tuple[object, ...]:
    memory = result["memory_after_load"]
    return (
        label,
        f"{result['requests_per_second']:.0f}",
        f"{result['p50_ms']:.2f}",
        f"{result['p99_ms']:.2f}",
        f"{result['cpu']['cpu_us_per_request']:.0f}",
        f"{result['cpu']['cores_used']:.2f}",
        f"{memory['total_rss_mb']:.1f} ({memory['processes']})",
        result["errors"],
    )


def ratio_row(found: dict[str, float]) -> tuple[object, ...]:
    return (
        f"  {CANDIDATE} / uvicorn",
        f"{found['throughput']:.3f}",
        f"{found['p50_latency']:.2f}",
        f"{found['p99_latency']:.2f}",
        f"{found['cpu_per_request']:.2f}",
        "",
        f"{found['total_rss']:.2f}",
        "",
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    wrk_command()  # fail early, before starting anything
    warn_if_busy()
    versions = server_versions()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency; one process "
        f"per server: uvicorn {versions['uvicorn']}, granian {versions['granian']}"
    )
    apps: dict[str, dict[str, Any]] = {}
    correctness: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="http-servers-") as tmp:
        log_dir = Path(tmp) / "logs"
        log_dir.mkdir()
        data_dir = Path(tmp) / "data"

        def run_app(app: App, env: dict[str, str], symbols: set[str]) -> None:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
            answers: dict[str, dict[str, Any]] = {}
            checks = checks_for(app, symbols)
            for turn in range(args.rounds):
                # Alternate which server goes first, so that a change in the machine's load
                # during the run does not always favour the same one.
                for name in SERVERS if turn % 2 == 0 else SERVERS[::-1]:
                    figures, answered = serve_and_measure(
                        AppServer(name, app, env, log_dir), args, checks if turn == 0 else {}
                    )
                    runs[name].append(figures)
                    answers.setdefault(name, answered)
            chosen = {name: best_run(found) for name, found in runs.items()}
            apps[app.key] = {"label": app.label, **chosen, "ratios": ratios(chosen)}
            correctness[app.key] = {"answers": answers, **compare(answers)}

        run_app(HELLO, {**os.environ}, set())
        backend_env = service_env(data_dir, "http://unused", "http://unused")
        with contextlib.ExitStack() as backends:
            price = backends.enter_context(
                AppServer("uvicorn", PRICE_BACKEND, backend_env, log_dir)
            )
            symbol = backends.enter_context(
                AppServer(
                    "uvicorn",
                    SYMBOL_BACKEND,
                    service_env(data_dir, "http://unused", price.url),
                    log_dir,
                )
            )
            symbols = set(seed(symbol.url, args.stocks))
            print(f"{len(symbols)} stocks added through stock-symbol's API")
            env = service_env(data_dir, symbol.url, price.url)
            run_app(SYMBOL, env, symbols)
            run_app(FRONTEND, env, symbols)
        supervision = {name: sigkill_survivors(name, log_dir) for name in SERVERS}

    rows: list[tuple[object, ...]] = []
    for app in APPS:
        found = apps[app.key]
        rows += [row(f"{app.label}, {name}", found[name]) for name in SERVERS]
        rows.append(ratio_row(found["ratios"]))
    print()
    print(
        format_table(
            ("", "req/s", "p50 ms", "p99 ms", "CPU us/req", "cores", "RSS MB (procs)", "errors"),
            rows,
        )
    )
    if args.rounds > 1:
        print()
        for app in APPS:
            for name in SERVERS:
                each = ", ".join(
                    f"{run['requests_per_second']:.0f}" for run in apps[app.key][name]["rounds"]
                )
                print(f"{app.label}, {name}, req/s of each round: {each} (the best kept)")
    print()
    for app in APPS:
        found = correctness[app.key]
        for line in found["differences"] + found["failures"] + found["header_differences"]:
            print(f"{app.key}: {line}")
    for app in APPS:
        for name in SERVERS:
            stop = apps[app.key][name]["sigterm"]
            flight = stop["in_flight_request"]
            print(
                f"{app.key} {name}: SIGTERM -> {stop['exit']} after {stop['seconds']:.2f} s, "
                f"{len(stop['left_running'])} process(es) left"
                + (f"; upload in flight answered {flight}" if flight else "")
            )
    for name in SERVERS:
        found = supervision[name]
        in_child = apps["stock-symbol"][name]["processes"]["app_in_child_process"]
        print(
            f"{name}: app in a child process: {'yes' if in_child else 'no'}; after SIGKILL of "
            f"its main process {len(found['survivors'])} survivor(s)"
            + (
                ", still answering on the port"
                if found["survivor_still_answers_on_the_port"]
                else ""
            )
            + "; a replacement on its port "
            + ("started" if found["replacement_started_on_the_port"] else "did not start")
            + f", {found['sockets_listening_on_the_port_with_the_replacement']} socket(s) listening"
        )
    print()

    differences = sum(
        len(found["differences"]) + len(found["failures"]) for found in correctness.values()
    )
    failed_requests = sum(
        apps[app.key][name]["errors_all_rounds"] for app in APPS for name in SERVERS
    )
    not_clean = sum(
        not stop["clean"]
        for app in APPS
        for name in SERVERS
        for stop in apps[app.key][name]["sigterm_all_rounds"]
    )
    targets = [
        target(
            f"{CANDIDATE} / uvicorn req/s, {app.label}",
            apps[app.key]["ratios"]["throughput"],
            ">=",
            MIN_SPEEDUP,
        )
        for app in (SYMBOL, FRONTEND)
    ]
    targets += [
        target("answers differing or failing", differences, "<=", 0),
        target("failed requests under load", failed_requests, "<=", 0),
        target(f"SIGTERM stops not clean within {STOP_SECONDS:g} s", not_clean, "<=", 0),
        target(
            f"{CANDIDATE} processes alive after SIGKILL of its main",
            len(supervision[CANDIDATE]["survivors"]),
            "<=",
            0,
        ),
    ]
    print_targets(targets)
    decision = CANDIDATE if all(t["pass"] for t in targets) else "uvicorn"
    print(f"\nkeep: {decision}")
    report: dict[str, Any] = {
        "load": load_section(args, rounds=args.rounds),
        "servers": {"versions": versions, "ratio": f"{CANDIDATE} / uvicorn"},
        "stocks": args.stocks,
        "apps": apps,
        "correctness": correctness,
        "supervision": supervision,
        "targets": targets,
        "decision": decision,
    }
    return write_report("http_servers", report, args.output)


if __name__ == "__main__":
    main(parse_args())

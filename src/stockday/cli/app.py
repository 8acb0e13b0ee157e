"""The `stockday` command: run the stack, one service, or seed demo data."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from stockday.devstack.emulator import (
    EMULATOR_CREDENTIALS,
    EmulatorUnavailable,
    memcached_command,
    start_emulator,
    stop_process,
)
from stockday.runtime.settings import Settings, describe_invalid_settings, get_settings

if TYPE_CHECKING:
    from stockday.devstack.supervisor import Stack
    from stockday.queues.base import DeadLetter

app = typer.Typer(help="Stock-of-the-Day: five services, one command.", no_args_is_help=True)
console = Console()

DEMO_STOCKS = (
    ("AAPL", "Apple Inc."),
    ("MSFT", "Microsoft Corporation"),
    ("NVDA", "NVIDIA Corporation"),
    ("AMZN", "Amazon.com, Inc."),
    ("GOOGL", "Alphabet Inc. Class A"),
    ("BRK.B", "Berkshire Hathaway Inc. Class B"),
    ("KO", "The Coca-Cola Company"),
    ("SAP", "SAP SE"),
)


class Backend(StrEnum):
    LOCAL = "local"
    AWS = "aws"


class HttpService(StrEnum):
    FRONTEND = "frontend"
    STOCK_SYMBOL = "stock-symbol"
    STOCK_PRICE = "stock-price"


class ConsumerService(StrEnum):
    LOGO_RESIZER = "logo-resizer"
    QUEUE_WORKER = "queue-worker"


def _valid_settings() -> Settings:
    """The settings, or a clear message per invalid variable and exit code 2 (no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        for line in describe_invalid_settings(exc):
            console.print(f"[red]{line}[/red]")
        raise typer.Exit(2) from None


EMULATOR_PORT_OFFSET = 5
MEMCACHED_PORT_OFFSET = 6


def _start_emulator(
    settings: Settings, port_base: int
) -> tuple[Settings, dict[str, str], list[subprocess.Popen[bytes]]]:
    """Start moto (and memcached, if installed) beside the stack; return the settings to use."""
    from stockday.devstack.supervisor import die_with_parent

    emulator_port = port_base + EMULATOR_PORT_OFFSET
    try:
        moto = start_emulator(emulator_port)
    except EmulatorUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    helpers = [moto]
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {"STOCKDAY_AWS_ENDPOINT_URL": endpoint, **EMULATOR_CREDENTIALS}
    os.environ.update(EMULATOR_CREDENTIALS)  # for the provisioning below, emulator only
    console.print(f"AWS emulator (moto) at {endpoint}")
    memcached = shutil.which("memcached")
    if memcached:
        memcached_port = port_base + MEMCACHED_PORT_OFFSET
        address = f"127.0.0.1:{memcached_port}"
        helpers.append(
            subprocess.Popen(
                memcached_command(memcached, memcached_port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # safe: no threads yet
            )
        )
        env["STOCKDAY_MEMCACHED_SERVERS"] = address
        console.print(f"memcached at {address}")
    else:
        console.print("memcached is not installed: the price cache will always miss")
    updated = settings.model_copy(
        update={
            "aws_endpoint_url": endpoint,
            "memcached_servers": env.get("STOCKDAY_MEMCACHED_SERVERS", settings.memcached_servers),
        }
    )
    return updated, env, helpers


def _provision(settings: Settings) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from stockday.aws.provision import provision

    try:
        provision(settings, say=console.print)
    except (BotoCoreError, ClientError) as exc:
        console.print(f"[red]could not create the AWS resources: {exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def up(
    port_base: Annotated[
        int, typer.Option(help="frontend on N, stock-symbol on N+1, stock-price on N+2")
    ] = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where all data lives [default: STOCKDAY_DATA_DIR or ./data]"),
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, max=8, help="Replicas of each service")] = 2,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness")] = 60.0,
    backend: Annotated[
        Backend | None, typer.Option(help="local or aws [default: STOCKDAY_BACKEND or local]")
    ] = None,
    emulator: Annotated[
        bool,
        typer.Option(
            help="With --backend aws: start a local AWS emulator (moto) on N+5 and memcached "
            "on N+6, and create the table, queues and bucket there"
        ),
    ] = False,
    provision: Annotated[
        bool,
        typer.Option(help="With --backend aws: create missing table, queues and bucket first"),
    ] = False,
) -> None:
    """Start all five services, wait until ready, print the URL, run until Ctrl-C or SIGTERM."""
    from stockday.devstack.supervisor import Stack

    settings = _valid_settings()
    if backend is not None:
        settings = settings.model_copy(update={"backend": backend.value})
    if emulator and settings.backend != "aws":
        console.print("[red]--emulator needs --backend aws[/red]")
        raise typer.Exit(2)
    extra_env: dict[str, str] = {"STOCKDAY_BACKEND": settings.backend}
    helpers: list[subprocess.Popen[bytes]] = []
    if emulator:
        settings, emulator_env, helpers = _start_emulator(settings, port_base)
        extra_env |= emulator_env
    try:
        if settings.backend == "aws" and (emulator or provision):
            _provision(settings)
        stack = Stack(
            data_dir=data_dir or settings.data_dir,
            port_base=port_base,
            replicas=replicas,
            extra_env=extra_env,
            say=console.print,
        )
        busy = stack.ports_in_use()
        if busy:
            console.print(f"[red]ports already in use: {busy}; is another stack running?[/red]")
            raise typer.Exit(2)
        _run_stack(stack, ready_timeout)
    finally:
        for helper in helpers:
            stop_process(helper)


class StopSignal:
    """Turns SIGTERM and SIGINT into a flag that the command's loop checks."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _run_stack(stack: Stack, ready_timeout: float) -> None:
    stop = StopSignal()
    started = time.monotonic()
    stack.start()
    console.print(f"starting {len(stack.children)} processes, data in {stack.data_dir}")
    deadline = started + ready_timeout
    ready = False
    while not stop.requested and time.monotonic() < deadline:
        stack.supervise_once()
        if all(stack.readiness().values()):
            ready = True
            break
        time.sleep(0.1)
    if stop.requested:
        stack.stop()
        return
    _print_status(stack)
    if not ready:
        console.print(f"[red]not all services became ready in {ready_timeout:.0f}s[/red]")
        console.print(f"logs: {stack.log_dir}")
    else:
        console.print(
            f"[green]ready in {time.monotonic() - started:.1f}s[/green]  "
            f"Stock-of-the-Day is at [bold]{stack.url}[/bold]  (Ctrl-C stops)"
        )
    try:
        while not stop.requested:
            stack.supervise_once()
            time.sleep(0.2)
    finally:
        console.print("stopping...")
        stack.stop()
        console.print("stopped")


def _print_status(stack: Stack) -> None:
    from stockday.devstack.supervisor import PORT_OFFSETS

    ready = stack.readiness()
    table = Table(title="Stock-of-the-Day")
    for column in ("service", "replica", "pid", "health port", "ready", "restarts"):
        table.add_column(column)
    for child in stack.children:
        http = child.service in PORT_OFFSETS
        table.add_row(
            child.service,
            f"{stack.replicas} workers" if http else str(child.replica),
            str(child.pid or "-"),
            str(child.port),
            "yes" if ready.get((child.service, child.replica)) else "[red]no[/red]",
            str(child.restarts),
        )
    console.print(table)


@app.command()
def serve(
    service: HttpService,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run one HTTP service under uvicorn (its workers are the service's replicas)."""
    import sys

    from stockday.devstack.supervisor import uvicorn_args

    _valid_settings()
    argv = [sys.executable, "-m", "uvicorn", *uvicorn_args(service.value, host, port)]
    # Become uvicorn (exec, not a child), so that signals reach its supervisor directly.
    os.execv(sys.executable, [*argv, "--workers", str(workers)])  # noqa: S606


@app.command()
def consume(
    service: ConsumerService,
    health_port: Annotated[
        int | None, typer.Option(help="Serve /api/ping, /api/ready, /metrics here")
    ] = None,
) -> None:
    """Run one queue consumer until SIGTERM (same as ``python -m stockday.<consumer>``)."""
    from stockday.runtime.entrypoint import main as consumer_main

    _valid_settings()
    if service is ConsumerService.LOGO_RESIZER:
        from stockday.logo_resizer.consumer import run
    else:
        from stockday.queue_worker.consumer import run
    port = [] if health_port is None else ["--health-port", str(health_port)]
    consumer_main(service.value, run, port)


@app.command()
def seed(
    port_base: Annotated[int, typer.Option(help="Port base of the running stack")] = 8000,
    symbol_url: Annotated[
        str | None, typer.Option(help="stock-symbol URL (overrides --port-base)")
    ] = None,
) -> None:
    """Add a few demo stocks with generated logos to a running stack."""
    from stockday.logos.demo import demo_logo_png

    base = symbol_url or f"http://127.0.0.1:{port_base + 1}"
    added = 0
    with httpx.Client(base_url=base, timeout=10) as client:
        for symbol, name in DEMO_STOCKS:
            files = {"file": (f"{symbol}.png", demo_logo_png(symbol), "image/png")}
            upload = client.post("/api/uploads", files=files)
            upload.raise_for_status()
            created = client.post(
                "/api/stocks",
                json={"symbol": symbol, "name": name, "upload_id": upload.json()["upload_id"]},
            )
            if created.status_code == 201:
                added += 1
            elif created.status_code != 409:
                console.print(f"[red]{symbol}: {created.status_code} {created.text}[/red]")
                raise typer.Exit(1)
    console.print(f"added {added} demo stocks ({len(DEMO_STOCKS) - added} were already there)")


@app.command()
def status(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory of the running stack [default: STOCKDAY_DATA_DIR]"),
    ] = None,
    once: Annotated[bool, typer.Option(help="Print totals once instead of a live view")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes")] = 2.0,
) -> None:
    """Each service's replicas, health, and request, error and latency figures, live."""
    from rich.live import Live

    from stockday.devstack.status import load_state, render, scrape

    directory = (data_dir or _valid_settings().data_dir).resolve()
    try:
        state = load_state(directory)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}; start one with `stockday up`[/red]")
        raise typer.Exit(1) from None
    with httpx.Client(timeout=2.0) as client:
        rows = scrape(state, client)
        if once:
            console.print(render(rows, None, 0.0))
            return
        previous = {row.port: row.traffic for row in rows}
        with Live(render(rows, None, 0.0), console=console, auto_refresh=False) as view:
            try:
                while True:
                    time.sleep(interval)
                    rows = scrape(load_state(directory), client)
                    view.update(render(rows, previous, interval), refresh=True)
                    previous = {row.port: row.traffic for row in rows}
            except (KeyboardInterrupt, FileNotFoundError):
                pass


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port of the emulator on 127.0.0.1")] = 4566,
) -> None:
    """Run a local AWS emulator (moto) with the table, queues and bucket created, until Ctrl-C."""
    settings = _valid_settings()
    try:
        process = start_emulator(port)
    except EmulatorUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(EMULATOR_CREDENTIALS)
    try:
        _provision(settings.model_copy(update={"aws_endpoint_url": endpoint}))
        console.print(f"AWS emulator at [bold]{endpoint}[/bold]; run the stack on it with:")
        console.print(
            f"  STOCKDAY_AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=emulator "
            "AWS_SECRET_ACCESS_KEY=emulator stockday up --backend aws"
        )
        stop = StopSignal()
        while not stop.requested and process.poll() is None:
            time.sleep(0.2)
    finally:
        stop_process(process)


@app.command("provision")
def provision_command() -> None:
    """Create the DynamoDB table, SQS queues and S3 bucket named by the settings, if missing.

    For an emulator or a developer account; production resources come from deploy/.
    """
    _provision(_valid_settings())


dlq_app = typer.Typer(help="Look at and re-drive dead letters.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


class QueueName(StrEnum):
    LOGO_JOBS = "logo-jobs"
    LOGO_EVENTS = "logo-events"


def _queue_setting(queue: QueueName) -> str:
    settings = _valid_settings()
    if queue is QueueName.LOGO_JOBS:
        return settings.logo_jobs_queue
    return settings.logo_events_queue


DataDirOption = Annotated[
    Path | None, typer.Option(help="Data directory of the local stack (STOCKDAY_DATA_DIR)")
]


def _settings_for(data_dir: Path | None) -> Settings:
    settings = _valid_settings()
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings


def dead_letter_reason(letter: DeadLetter, max_receives: int) -> str:
    """Why a message is dead, derived from its body (SQS cannot annotate a message).

    A body the domain cannot decode is named with the decoder's error; a well-formed message
    died because its handler kept failing, and the consumer logs say why under its id.
    """
    from stockday.contracts.messages import MalformedMessage, decode

    try:
        message = decode(letter.body)
    except MalformedMessage as exc:
        return f"malformed: {exc}"
    # On SQS each look at a dead letter adds one to its receive count; it died after at most
    # the redrive policy's max receives.
    failures = min(letter.receive_count, max_receives)
    return (
        f"{message.type} for {message.symbol}: handler failed {failures} times "
        f"(see the consumer logs for message {letter.message_id})"
    )


@dlq_app.command("list")
def dlq_list(
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Dead-letter counts of every queue and the oldest dead letters, with their reasons."""
    from stockday.runtime import composition

    settings = _settings_for(data_dir)

    async def show() -> None:
        for queue_name in QueueName:
            queue = composition.message_queue(settings, _queue_setting(queue_name))
            try:
                stats = await queue.stats()
                letters = await queue.dead_letters(limit=limit)
            finally:
                await queue.close()
            table = Table(
                title=f"{queue.name}: {stats.visible} waiting, {stats.in_flight} in flight, "
                f"{stats.dead_letters} dead"
            )
            for column in ("message id", "receives", "dead since", "reason", "body"):
                table.add_column(column)
            for letter in letters:
                table.add_row(
                    letter.message_id,
                    str(letter.receive_count),
                    letter.dead_at.isoformat(timespec="seconds"),
                    dead_letter_reason(letter, settings.queue_max_receives),
                    letter.body[:80],
                )
            console.print(table)

    asyncio.run(show())


@dlq_app.command("redrive")
def dlq_redrive(
    queue_name: Annotated[QueueName, typer.Argument(help="Queue whose dead letters to re-drive")],
    data_dir: DataDirOption = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Move dead letters back to their queue for another try."""
    from stockday.runtime import composition

    settings = _settings_for(data_dir)

    async def redrive() -> int:
        queue = composition.message_queue(settings, _queue_setting(queue_name))
        try:
            return await queue.redrive(limit=limit)
        finally:
            await queue.close()

    moved = asyncio.run(redrive())
    console.print(f"re-drove {moved} dead letters to {queue_name.value}")


def main() -> None:
    app()


canary_app = typer.Typer(help="Judge a canary release from its metrics.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")


def _read_exposition(source: str, timeout: float) -> str:
    """A Prometheus text exposition from a /metrics URL or a saved file."""
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=timeout)
        response.raise_for_status()
        return response.text
    return Path(source).read_text(encoding="utf-8")


@canary_app.command("analyze")
def canary_analyze(
    stable: Annotated[
        list[str], typer.Option(help="Metrics of a stable replica: a /metrics URL or a file")
    ],
    canary: Annotated[
        list[str], typer.Option(help="Metrics of a canary replica: a /metrics URL or a file")
    ],
    window: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between two reads of every URL; only requests in between count "
            "(0: the totals as read, for files)",
        ),
    ] = 60.0,
    service: Annotated[
        str | None, typer.Option(help="Count only this service's requests (label 'service')")
    ] = None,
    min_requests: Annotated[int, typer.Option(min=1)] = 100,
    max_error_rate_increase: Annotated[float, typer.Option(min=0, max=1)] = 0.01,
    max_latency_ratio: Annotated[float, typer.Option(min=1)] = 1.5,
    latency_slack_ms: Annotated[float, typer.Option(min=0)] = 25.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for a /metrics")] = 10.0,
) -> None:
    """Compare canary and stable error rate and p99 latency; exit 0 to promote, 1 to roll back."""
    import json

    from stockday.release.canary import Decision, Thresholds, analyze
    from stockday.release.traffic import Traffic, combine, parse_traffic

    def read_all(sources: list[str]) -> Traffic:
        try:
            return combine(parse_traffic(_read_exposition(s, timeout), service) for s in sources)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            console.print(f"[red]cannot read metrics: {exc}[/red]")
            raise typer.Exit(2) from None

    stable_before, canary_before = read_all(stable), read_all(canary)
    if window > 0:
        time.sleep(window)
        stable_traffic = read_all(stable).since(stable_before)
        canary_traffic = read_all(canary).since(canary_before)
    else:
        stable_traffic, canary_traffic = stable_before, canary_before
    verdict = analyze(
        stable_traffic,
        canary_traffic,
        Thresholds(
            min_requests=min_requests,
            max_error_rate_increase=max_error_rate_increase,
            max_latency_ratio=max_latency_ratio,
            latency_slack_seconds=latency_slack_ms / 1000,
        ),
    )
    if json_output:
        print(
            json.dumps(
                {
                    "decision": verdict.decision.value,
                    "reasons": verdict.reasons,
                    "stable": verdict.stable,
                    "canary": verdict.canary,
                }
            )
        )
    else:
        colour = "green" if verdict.decision is Decision.PROMOTE else "red"
        console.print(f"[bold {colour}]{verdict.decision.value}[/bold {colour}]")
        for reason in verdict.reasons:
            console.print(f"  - {reason}")
    raise typer.Exit(0 if verdict.decision is Decision.PROMOTE else 1)


SMOKE_CHECKS = (
    ("/api/ready", "ready", "readiness: the frontend reaches stock-symbol"),
    ("/", "Stock of the Day", "home page with a random stock"),
    ("/watchlist", "Watchlist", "watchlist page"),
    ("/stocks/new", "csrf", "add-stock form with its CSRF token"),
)


@app.command()
def smoke(
    url: Annotated[str, typer.Argument(help="The site's base URL, e.g. https://staging.example")],
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the site to become ready")
    ] = 60.0,
) -> None:
    """Read-only smoke test of a deployed site (the pipeline runs it after each deploy)."""
    base = url.rstrip("/")
    deadline = time.monotonic() + wait
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        while True:
            try:
                if client.get(f"{base}/api/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        table = Table("check", "status", "ms", "result")
        failed = False
        for path, marker, what in SMOKE_CHECKS:
            started = time.perf_counter()
            try:
                response = client.get(f"{base}{path}")
                status, body = str(response.status_code), response.text
                csp = response.headers.get("content-security-policy", "")
                ok = response.status_code == 200 and marker in body
                if ok and path != "/api/ready" and "default-src" not in csp:
                    ok, body = False, "no Content-Security-Policy header"
            except httpx.HTTPError as exc:
                status, body, ok = "-", f"{type(exc).__name__}: {exc}", False
            elapsed = f"{(time.perf_counter() - started) * 1000:.0f}"
            result = "[green]ok[/green]" if ok else f"[red]failed[/red] {body[:80]}"
            table.add_row(f"{what} ({path})", status, elapsed, result)
            failed = failed or not ok
    console.print(table)
    raise typer.Exit(1 if failed else 0)

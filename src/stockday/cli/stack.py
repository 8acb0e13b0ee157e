"""`stockday up` and `stockday status`: the whole stack on this machine, and how it is doing."""

from __future__ import annotations

import subprocess
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.table import Table

from stockday.cli.aws import provision_resources, start_beside_stack
from stockday.cli.session import StopSignal, console, valid_settings
from stockday.devstack.emulator import stop_process
from stockday.runtime import catalog

if TYPE_CHECKING:
    from stockday.devstack.supervisor import Stack


class Backend(StrEnum):
    LOCAL = "local"
    AWS = "aws"


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

    settings = valid_settings()
    if backend is not None:
        settings = settings.model_copy(update={"backend": backend.value})
    if emulator and settings.backend != "aws":
        console.print("[red]--emulator needs --backend aws[/red]")
        raise typer.Exit(2)
    extra_env: dict[str, str] = {"STOCKDAY_BACKEND": settings.backend}
    helpers: list[subprocess.Popen[bytes]] = []
    if emulator:
        settings, emulator_env, helpers = start_beside_stack(settings, port_base)
        extra_env |= emulator_env
    try:
        if settings.backend == "aws" and (emulator or provision):
            provision_resources(settings, on_emulator=emulator)
        stack = Stack(
            data_dir=data_dir or settings.data_dir,
            port_base=port_base,
            replicas=replicas,
            settings=settings,
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
    http = {service.name for service in catalog.HTTP_SERVICES}
    ready = stack.readiness()
    table = Table(title="Stock-of-the-Day")
    for column in ("service", "replica", "pid", "health port", "ready", "restarts"):
        table.add_column(column)
    for child in stack.children:
        table.add_row(
            child.service,
            f"{stack.replicas} workers" if child.service in http else str(child.replica),
            str(child.pid or "-"),
            str(child.port),
            "yes" if ready.get((child.service, child.replica)) else "[red]no[/red]",
            str(child.restarts),
        )
    console.print(table)


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

    directory = (data_dir or valid_settings().data_dir).resolve()
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

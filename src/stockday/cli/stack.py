"""`stockday up` and `stockday status`: the whole stack on this machine, and how it is doing."""

from __future__ import annotations

import subprocess
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from stockday.cli.aws import provision_resources, start_beside_stack
from stockday.cli.session import StopSignal, console, valid_settings
from stockday.devstack.emulator import stop_process

if TYPE_CHECKING:
    from rich.console import RenderableType

    from stockday.devstack.supervisor import Stack
    from stockday.devstack.topology import Topology
    from stockday.runtime.settings import Settings


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
    zones: Annotated[
        int,
        typer.Option(
            min=1,
            max=8,
            help="Zones to spread replicas over; each listens on loopback addresses of its own "
            "(zone a on 127.0.1.x, zone b on 127.0.2.x...)",
        ),
    ] = 1,
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
    prometheus: Annotated[
        bool,
        typer.Option(
            help="Also run Prometheus (Debian's) on 127.0.0.1:N+4, scraping every replica and "
            "evaluating the SLO rules; `stockday status` then shows the objectives"
        ),
    ] = False,
) -> None:
    """Start all five services, wait until ready, print the URL, run until Ctrl-C or SIGTERM."""
    from stockday.devstack.topology import Topology

    settings = valid_settings()
    directory = (data_dir or settings.data_dir).resolve()
    topology = Topology(port_base=port_base, replicas=replicas, zones=zones, prometheus=prometheus)
    _clear_leftovers(directory)
    _refuse_taken_ports(topology)
    if backend is not None:
        settings = settings.model_copy(update={"backend": backend.value})
    if emulator and settings.backend != "aws":
        console.print("[red]--emulator needs --backend aws[/red]")
        raise typer.Exit(2)
    _run(directory, topology, settings, ready_timeout, emulator=emulator, provision=provision)


def _run(
    directory: Path,
    topology: Topology,
    settings: Settings,
    ready_timeout: float,
    *,
    emulator: bool,
    provision: bool,
) -> None:
    """Start the emulator if asked, provision if asked, then run the stack until stopped."""
    from stockday.devstack.haproxy import HAProxyMissing
    from stockday.devstack.prometheus import PrometheusMissing
    from stockday.devstack.supervisor import Stack

    port_base = topology.port_base
    extra_env: dict[str, str] = {"STOCKDAY_BACKEND": settings.backend}
    helpers: list[subprocess.Popen[bytes]] = []
    if emulator:
        settings, emulator_env, helpers = start_beside_stack(settings, port_base)
        extra_env |= emulator_env
    try:
        if settings.backend == "aws" and (emulator or provision):
            provision_resources(settings, on_emulator=emulator)
        try:
            stack = Stack(
                data_dir=directory,
                topology=topology,
                settings=settings,
                extra_env=extra_env,
                say=console.print,
            )
        except (HAProxyMissing, PrometheusMissing) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        _run_stack(stack, ready_timeout)
    finally:
        for helper in helpers:
            stop_process(helper)


def _clear_leftovers(directory: Path) -> None:
    """Refuse a second stack on one data directory; stop what a dead one left running."""
    from stockday.devstack.state import kill_and_wait, leftovers

    found = leftovers(directory)
    if found.supervisor is not None:
        console.print(
            f"[red]a stack is already running from {directory} (stockday up, pid "
            f"{found.supervisor}); stop it first[/red]"
        )
        raise typer.Exit(2)
    if found.processes:
        names = ", ".join(f"{name} (pid {pid})" for name, pid in found.processes)
        console.print(f"[yellow]an earlier run left processes behind; stopping {names}[/yellow]")
        if survivors := kill_and_wait([pid for _, pid in found.processes]):
            console.print(f"[red]could not stop {survivors}[/red]")
            raise typer.Exit(2)


def _refuse_taken_ports(topology: Topology) -> None:
    """Name what holds a port the stack needs, instead of restarting a replica that cannot bind
    it over and over."""
    from stockday.devstack.state import port_holders, port_taken

    busy = [(host, port) for host, port in topology.ports() if port_taken(host, port)]
    if not busy:
        return
    holders = port_holders(busy)
    for host, port in busy:
        holder = holders.get(port, "another program")
        console.print(f"[red]{host}:{port} is taken by {holder}[/red]")
    console.print("[red]choose another --port-base, or stop what holds these ports[/red]")
    raise typer.Exit(2)


def _run_stack(stack: Stack, ready_timeout: float) -> None:
    from stockday.devstack.status import render, scrape

    stop = StopSignal()
    client = httpx.Client(timeout=1.0)
    started = time.monotonic()
    stack.start()
    console.print(f"starting {len(stack.children)} processes, data in {stack.data_dir}")
    deadline = started + ready_timeout
    ready = False
    while not stop.requested and time.monotonic() < deadline:
        stack.supervise_once()
        # Ready for visitors: every replica ready, and HAProxy sending requests to each.
        if all(row.serving for row in scrape(stack.describe(), client, traffic=False)):
            ready = True
            break
        stack.pause(0.1)
    if stop.requested:
        stack.stop()
        return
    console.print(render(scrape(stack.describe(), client), None, 0.0))
    if stack.topology.prometheus:
        console.print(
            f"Prometheus, with the service level objectives: {stack.topology.prometheus_url}"
        )
    client.close()
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
            stack.pause(0.2)
    finally:
        console.print("stopping...")
        stack.stop()
        console.print("stopped")


def status(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory of the running stack [default: STOCKDAY_DATA_DIR]"),
    ] = None,
    once: Annotated[bool, typer.Option(help="Print totals once instead of a live view")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes")] = 2.0,
) -> None:
    """Every replica by zone: health, place in the load balancer, requests, errors, latency."""
    from rich.console import Group
    from rich.live import Live

    from stockday.devstack.state import load_state
    from stockday.devstack.status import render, scrape

    directory = (data_dir or valid_settings().data_dir).resolve()
    try:
        state = load_state(directory)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}; start one with `stockday up`[/red]")
        raise typer.Exit(1) from None
    with httpx.Client(timeout=2.0) as client:
        rows = scrape(state, client)
        if once:
            console.print(render(rows, None, 0.0), *_objectives(state, client))
            return
        previous = {row.name: row.traffic for row in rows}
        first = Group(render(rows, None, 0.0), *_objectives(state, client))
        with Live(first, console=console, auto_refresh=False) as view:
            try:
                while True:
                    time.sleep(interval)
                    state = load_state(directory)
                    rows = scrape(state, client)
                    tables = (render(rows, previous, interval), *_objectives(state, client))
                    view.update(Group(*tables), refresh=True)
                    previous = {row.name: row.traffic for row in rows}
            except (KeyboardInterrupt, FileNotFoundError):
                pass


def _objectives(state: dict[str, Any], client: httpx.Client) -> list[RenderableType]:
    """The objectives' table when the stack runs Prometheus; a line saying why not if it
    does not answer; nothing without Prometheus."""
    from stockday.devstack.objectives import (
        PrometheusUnavailable,
        read_objectives,
        render_objectives,
    )

    url = state.get("prometheus_url")
    if not url:
        return []
    try:
        return [render_objectives(read_objectives(str(url), client), str(url))]
    except PrometheusUnavailable as exc:
        return [f"[yellow]service level objectives unavailable: {exc}[/yellow]"]

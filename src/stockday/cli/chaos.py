"""`stockday chaos`: break a running local stack on purpose, and watch it hold.

Kills a replica, every replica of a service, HAProxy or a whole zone (the supervisor restarts
them), stops a replica without killing it (a hang), or cuts a zone off the network with
iptables and heals it. Processes are found in the stack's state file and checked by start time,
so a recycled pid is never signalled.
"""

from __future__ import annotations

import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from stockday.cli.session import StopSignal, console, settings_for

app = typer.Typer(help="Break a running local stack on purpose: kill, stop, partition, heal.")

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data directory of the running stack [default: STOCKDAY_DATA_DIR]"),
]


class Signal(StrEnum):
    KILL = "kill"
    STOP = "stop"
    CONT = "cont"


SIGNALS = {Signal.KILL: signal.SIGKILL, Signal.STOP: signal.SIGSTOP, Signal.CONT: signal.SIGCONT}


def _state(data_dir: Path | None) -> dict[str, Any]:
    from stockday.devstack.state import load_state

    directory = settings_for(data_dir).data_dir.resolve()
    try:
        return load_state(directory)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}: is `stockday up` running with this data directory?[/red]")
        raise typer.Exit(1) from None


def _signal(children: list[dict[str, Any]], signum: signal.Signals) -> list[str]:
    import os

    from stockday.devstack.state import same_process

    hit = []
    for child in children:
        if same_process(child.get("pid"), child.get("started")):
            try:
                os.kill(int(child["pid"]), signum)
            except ProcessLookupError:
                continue
            hit.append(f"{child['name']} (pid {child['pid']})")
    return hit


@app.command()
def kill(
    target: Annotated[
        str, typer.Argument(help="A replica (frontend-a0), a service (all its replicas), haproxy")
    ],
    how: Annotated[
        Signal, typer.Option("--signal", help="kill (SIGKILL), stop (SIGSTOP: a hang), cont")
    ] = Signal.KILL,
    data_dir: DataDir = None,
) -> None:
    """Signal one replica, every replica of a service, or HAProxy."""
    children = _state(data_dir)["children"]
    chosen = [c for c in children if target in (c["name"], c["service"])]
    if not chosen:
        names = sorted({c["name"] for c in children} | {c["service"] for c in children})
        console.print(f"[red]no process {target!r} in this stack: one of {', '.join(names)}[/red]")
        raise typer.Exit(2)
    _report(_signal(chosen, SIGNALS[how]), how)


@app.command("kill-zone")
def kill_zone(
    zone: Annotated[str, typer.Argument(help="The zone's letter: a, b...")],
    data_dir: DataDir = None,
) -> None:
    """SIGKILL every process of a zone, as an AZ that loses its power."""
    state = _state(data_dir)
    if zone not in state["zones"] or len(state["zones"]) == 1:
        console.print(f"[red]no zone {zone!r} to kill: the zones are {state['zones']}[/red]")
        raise typer.Exit(2)
    _report(
        _signal([c for c in state["children"] if c["zone"] == zone], signal.SIGKILL), Signal.KILL
    )


@app.command()
def partition(
    zone: Annotated[str, typer.Argument(help="The zone's letter: a, b...")],
    seconds: Annotated[
        float | None,
        typer.Option(min=0.1, help="Heal after this long (else it lasts until `chaos heal`)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Cut a zone off the network: packets to and from its addresses are dropped (iptables)."""
    from stockday.devstack import partition as firewall
    from stockday.devstack.topology import Topology

    state = _state(data_dir)
    port_base = int(state["port_base"])
    try:
        plan = Topology(port_base, int(state["replicas"]), len(state["zones"]))
        firewall.partition(port_base, plan.zone(zone))
    except (ValueError, firewall.PartitionUnavailable) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"zone {zone} is cut off ({plan.zone(zone).network})")
    if seconds is None:
        console.print(f"heal it with: stockday chaos heal {zone}")
        return
    stop = StopSignal()
    deadline = time.monotonic() + seconds
    try:
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    finally:
        firewall.heal(port_base, zone)
        console.print(f"zone {zone} healed")


@app.command()
def heal(
    zone: Annotated[
        str | None, typer.Argument(help="The zone to heal [default: every zone]")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Remove the partition rules of one zone, or of all."""
    from stockday.devstack import partition as firewall

    port_base = int(_state(data_dir)["port_base"])
    try:
        removed = firewall.heal(port_base, zone)
    except firewall.PartitionUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"removed {removed} rules" if removed else "nothing to heal")


def _report(hit: list[str], how: Signal) -> None:
    if not hit:
        console.print("[yellow]nothing was running there[/yellow]")
        return
    console.print(f"{how.value}: {', '.join(hit)}")

"""What `stockday status` shows: every replica by zone, its health and its traffic.

The running stack records where its processes are (``<data-dir>/run/stack.json``). Each row is
read from the replica's own ``/api/ready`` and ``/metrics`` (each replica exports its own
metrics, as each pod does), and from HAProxy's statistics, which say whether the load balancer
has the replica in rotation. Rates and latency quantiles are computed between two scrapes.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

from stockday.devstack.objectives import prometheus_ready
from stockday.devstack.prometheus import NAME as PROMETHEUS
from stockday.devstack.state import same_process
from stockday.devstack.topology import GATEWAY
from stockday.release.traffic import Traffic, parse_traffic
from stockday.runtime import catalog


@dataclass
class Row:
    name: str
    service: str
    zone: str
    pid: int | None
    address: str
    alive: bool
    ready: bool
    rotation: str  # HAProxy's word for the server: UP, DOWN, "UP 1/2"...; "" if not balanced
    reason: str
    traffic: Traffic
    restarts: int = 0

    @property
    def serving(self) -> bool:
        """Ready and, for a replica HAProxy balances, in its rotation (UP): a replica can
        answer its readiness check a second or two before HAProxy's checks take it in."""
        balanced = self.service in _BALANCED
        return self.ready and (not balanced or self.rotation.startswith("UP"))


_BALANCED = frozenset(service.name for service in catalog.HTTP_SERVICES)


def rotation(stats_url: str, client: httpx.Client) -> dict[str, str]:
    """HAProxy's status of each server, by server name (the replica's name)."""
    try:
        answer = client.get(f"{stats_url};csv")
        answer.raise_for_status()
    except httpx.HTTPError:
        return {}
    lines = answer.text.lstrip("# ")
    states = {}
    for record in csv.DictReader(io.StringIO(lines)):
        if record.get("svname") not in (None, "FRONTEND", "BACKEND"):
            states[record["svname"]] = record.get("status", "")
    return states


def scrape(state: dict[str, Any], client: httpx.Client, *, traffic: bool = True) -> list[Row]:
    """One row per process; ``traffic=False`` skips the metrics (health and rotation only), as
    `up` asks while it waits for readiness, ten times a second beside starting replicas."""
    in_rotation = rotation(str(state.get("stats_url", "")), client)
    rows = []
    for child in state.get("children", []):
        name, service = str(child["name"]), str(child["service"])
        pid = child.get("pid")
        alive = same_process(pid, child.get("started"))
        restarts = int(child.get("restarts", 0))
        if service == GATEWAY:
            up = alive and bool(in_rotation)
            rows.append(
                Row(name, service, "-", pid, state["url"], alive, up, "", "", Traffic(), restarts)
            )
            continue
        if service == PROMETHEUS:
            url = str(state.get("prometheus_url"))
            up, why = prometheus_ready(url, client)
            rows.append(Row(name, service, "-", pid, url, alive, up, "", why, Traffic(), restarts))
            continue
        address = f"{child['host']}:{child['port']}"
        ready, reason, counted = False, "", Traffic()
        try:
            answer = client.get(f"http://{address}/api/ready")
            ready = answer.status_code == 200
            if not ready:
                reason = "; ".join(answer.json().get("reasons", [])) or str(answer.status_code)
            if traffic:
                counted = parse_traffic(client.get(f"http://{address}/metrics").text)
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"not answering: {type(exc).__name__}"
        status = in_rotation.get(name, "")
        zone = str(child.get("zone") or "-")
        rows.append(
            Row(name, service, zone, pid, address, alive, ready, status, reason, counted, restarts)
        )
    return sorted(rows, key=lambda row: (row.zone != "-", row.zone, row.service, row.name))


def render(rows: list[Row], previous: dict[str, Traffic] | None, seconds: float) -> Table:
    """The status table, by zone; with a previous scrape, rates over ``seconds``, else totals."""
    live = previous is not None
    title = f"Stock-of-the-Day, last {seconds:.0f} s" if live else "Stock-of-the-Day, since start"
    table = Table(title=title)
    columns = ["zone", "replica", "pid", "address", "health", "in rotation", "restarts"]
    columns += ["req/s" if live else "requests", "errors", "p50 ms", "p99 ms"]
    for column in columns:
        table.add_column(column, justify="left" if column in _LEFT else "right")
    for row in rows:
        traffic = row.traffic.since(previous.get(row.name)) if previous is not None else row.traffic
        volume = f"{traffic.requests / seconds:.1f}" if live else f"{traffic.requests:.0f}"
        errors = f"{100 * traffic.errors / traffic.requests:.1f}%" if traffic.requests else "-"
        table.add_row(
            row.zone,
            row.name,
            str(row.pid or "-"),
            row.address,
            _health(row),
            _rotation(row.rotation),
            str(row.restarts),
            volume,
            errors,
            _ms(traffic.quantile(0.5)),
            _ms(traffic.quantile(0.99)),
        )
    return table


_LEFT = {"zone", "replica", "address", "health", "in rotation"}


def _health(row: Row) -> str:
    if not row.alive:
        return "[red]down[/red]"
    if row.ready:
        return "[green]ready[/green]"
    return f"[yellow]not ready[/yellow] {row.reason}"[:120]


def _rotation(status: str) -> str:
    if not status:
        return "-"
    colour = "green" if status.startswith("UP") else "red"
    return f"[{colour}]{status}[/{colour}]"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return ">5000" if math.isinf(seconds) else f"<={seconds * 1000:g}"

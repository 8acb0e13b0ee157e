"""What `stockday status` shows: each service's processes, health and traffic, from its endpoints.

The running stack records where its processes are (``<data-dir>/run/stack.json``); each row is
read from the service's own ``/api/ready`` and ``/metrics``, so the command shows what a
monitoring system would scrape. Rates and latency quantiles are computed between two scrapes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.table import Table

from stockday.devstack.processes import alive, uvicorn_workers
from stockday.release.traffic import Traffic, parse_traffic
from stockday.runtime.catalog import HTTP_SERVICES

HTTP_SERVICE_NAMES = frozenset(service.name for service in HTTP_SERVICES)


@dataclass
class Row:
    service: str
    replica: str
    pid: int | None
    port: int
    alive: bool
    ready: bool
    reason: str
    traffic: Traffic


def load_state(data_dir: Path) -> dict[str, object]:
    path = data_dir / "run" / "stack.json"
    if not path.exists():
        raise FileNotFoundError(f"no running stack recorded in {path}")
    state: dict[str, object] = json.loads(path.read_text())
    return state


def worker_count(master: int) -> int:
    """uvicorn workers of a master process."""
    return len(uvicorn_workers(master))


def pid_alive(pid: int | None) -> bool:
    return pid is not None and alive(pid)


def scrape(state: dict[str, object], client: httpx.Client) -> list[Row]:
    rows = []
    children = state.get("children", [])
    assert isinstance(children, list)
    for child in children:
        service, port, pid = child["service"], int(child["port"]), child.get("pid")
        alive = pid_alive(pid)
        ready, reason, traffic = False, "", Traffic()
        if service == "gateway":  # HAProxy: its port answers for the frontend behind it
            rows.append(Row(service, "haproxy", pid, port, alive, alive, "", traffic))
            continue
        try:
            answer = client.get(f"http://127.0.0.1:{port}/api/ready")
            ready = answer.status_code == 200
            if not ready:
                reason = "; ".join(answer.json().get("reasons", [])) or str(answer.status_code)
            traffic = parse_traffic(client.get(f"http://127.0.0.1:{port}/metrics").text)
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"not answering: {type(exc).__name__}"
        http = service in HTTP_SERVICE_NAMES
        replica = str(child["replica"])
        if http and alive and pid:
            replica = f"{worker_count(pid)} workers"
        rows.append(Row(service, replica, pid, port, alive, ready, reason, traffic))
    return rows


def render(rows: list[Row], previous: dict[int, Traffic] | None, seconds: float) -> Table:
    """The status table; with a previous scrape, rates over ``seconds``, else totals."""
    live = previous is not None
    title = f"Stock-of-the-Day, last {seconds:.0f} s" if live else "Stock-of-the-Day, since start"
    table = Table(title=title)
    columns = ["service", "replicas", "pid", "port", "health"]
    columns += ["req/s" if live else "requests", "errors", "p50 ms", "p99 ms"]
    for column in columns:
        table.add_column(column, justify="right" if column not in ("service", "health") else "left")
    for row in rows:
        traffic = row.traffic.since(previous.get(row.port)) if previous is not None else row.traffic
        if not row.alive:
            health = "[red]down[/red]"
        elif row.ready:
            health = "[green]ready[/green]"
        else:
            health = f"[yellow]not ready[/yellow] {row.reason}"[:120]
        volume = f"{traffic.requests / seconds:.1f}" if live else f"{traffic.requests:.0f}"
        errors = f"{100 * traffic.errors / traffic.requests:.1f}%" if traffic.requests else "-"
        p50, p99 = traffic.quantile(0.5), traffic.quantile(0.99)
        table.add_row(
            row.service,
            row.replica,
            str(row.pid or "-"),
            str(row.port),
            health,
            volume,
            errors,
            _ms(p50),
            _ms(p99),
        )
    return table


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return ">5000" if math.isinf(seconds) else f"<={seconds * 1000:g}"

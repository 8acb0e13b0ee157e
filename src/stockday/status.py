"""What `stockday status` shows: each service's processes, health and traffic, from its endpoints.

The running stack records where its processes are (``<data-dir>/run/stack.json``); each row is
read from the service's own ``/api/ready`` and ``/metrics``, so the command shows what a
monitoring system would scrape. Rates and latency quantiles are computed between two scrapes.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table


@dataclass
class Traffic:
    """Cumulative counters of one scrape of one service."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers, or messages a consumer failed to handle
    buckets: dict[float, float] = field(default_factory=dict)  # latency upper bound -> count

    def since(self, earlier: Traffic | None) -> Traffic:
        if earlier is None:
            return self
        return Traffic(
            requests=self.requests - earlier.requests,
            errors=self.errors - earlier.errors,
            buckets={b: n - earlier.buckets.get(b, 0.0) for b, n in self.buckets.items()},
        )

    def quantile(self, q: float) -> float | None:
        """The q-quantile of latency in seconds (a bucket's upper bound), None without traffic."""
        total = self.buckets.get(math.inf, 0.0)
        if total <= 0:
            return None
        rank = q * total
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= rank:
                return bound
        return None


def parse_traffic(text: str) -> Traffic:
    """Requests, errors and the latency histogram of one service's /metrics answer."""
    traffic = Traffic()
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stockday_http_requests_total":
                traffic.requests += sample.value
                if sample.labels.get("status") == "5xx":
                    traffic.errors += sample.value
            elif sample.name == "stockday_http_request_duration_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
            elif sample.name == "stockday_consumer_messages_total":
                traffic.requests += sample.value
                if sample.labels.get("outcome") == "retried":
                    traffic.errors += sample.value
            elif sample.name == "stockday_consumer_job_duration_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
    traffic.buckets = dict(buckets)
    return traffic


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
    """uvicorn workers of a master process: its children started by multiprocessing's spawn."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master and b"spawn" in (stat.parent / "cmdline").read_bytes():
                count += 1
        except (OSError, IndexError, ValueError):
            continue
    return count


def pid_alive(pid: int | None) -> bool:
    return pid is not None and Path(f"/proc/{pid}").exists()


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
        http = service in ("frontend", "stock-symbol", "stock-price")
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

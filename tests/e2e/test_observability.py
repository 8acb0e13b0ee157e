"""What operators see of a running stack: one trace across four services, metrics, status."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import images as sample_images
from tests.support.ports import free_port
from tests.support.stack import RunningStack, free_port_base, status_once
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


class OtlpCollector:
    """A minimal OTLP/HTTP trace receiver: keeps (trace id, service, span name) of every span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    for resource_spans in request.resource_spans:
                        service = next(
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        )
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                collector.spans.append((span.trace_id.hex(), service, span.name))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def services_of_trace(self, trace_id: str) -> set[str]:
        with self.lock:
            return {service for tid, service, _ in self.spans if tid == trace_id}

    def trace_ids_of(self, service: str, name_part: str) -> set[str]:
        with self.lock:
            return {t for t, s, n in self.spans if s == service and name_part in n}


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    receiver = OtlpCollector()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def traced_stack(
    collector: OtlpCollector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    stack = RunningStack(tmp_path_factory.mktemp("traced") / "data", free_port_base())
    stack.env["STOCKDAY_OTLP_ENDPOINT"] = collector.url
    stack.start()
    yield stack
    stack.stop()


def test_one_trace_runs_from_the_form_through_the_queues_to_the_recorded_logo(
    traced_stack: RunningStack, collector: OtlpCollector
) -> None:
    stack = traced_stack
    with stack.client(stack.frontend) as site, stack.client(stack.symbol) as api:
        form = site.get("/stocks/new").text
        fields = dict(
            re.findall(r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', form)
        )
        token = {"X-CSRF-Token": fields["csrf_token"]} if "csrf_token" in fields else {}
        logo = sample_images.png(200, 100)
        uploaded = site.post(
            "/uploads", files={"file": ("t.png", logo, "image/png")}, headers=token
        )
        assert uploaded.status_code == 201, uploaded.text
        fields |= {"symbol": "TRCE", "name": "Traced", "upload_id": uploaded.json()["upload_id"]}
        created = site.post("/stocks", data=fields, follow_redirects=False)
        assert created.status_code == 303, created.text
        deadline = time.monotonic() + 15
        while api.get("/api/stocks/TRCE").json()["logo"]["state"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)

    # The trace that the form submit started, followed across HTTP and both queues.
    wanted = {"frontend", "stock-symbol", "logo-resizer", "queue-worker"}
    deadline = time.monotonic() + 15
    while True:
        submits = collector.trace_ids_of("frontend", "POST /stocks")
        found = {t: collector.services_of_trace(t) for t in submits}
        if any(wanted <= services for services in found.values()):
            break
        assert time.monotonic() < deadline, (found, sorted({(s, n) for _, s, n in collector.spans}))
        time.sleep(0.2)


def quote_requests(client: httpx.Client, url: str) -> float:
    """Quote requests that one stock-price replica has counted in its own /metrics."""
    text = client.get(f"{url}/metrics").text
    return sum(
        float(value)
        for value in re.findall(
            r'^stockday_http_requests_total\{[^}]*route="/api/quotes/\{symbol\}"[^}]*\} (\S+)$',
            text,
            re.MULTILINE,
        )
    )


def test_each_replica_counts_its_own_requests_and_together_they_count_all(
    traced_stack: RunningStack,
) -> None:
    """Each replica exports its own metrics, as each pod does: the requests HAProxy spread over
    the stock-price replicas are all counted once, summed over the replicas."""
    stack = traced_stack
    replicas = [stack.replica_url(r) for r in stack.replicas_of("stock-price")]
    requests = 40
    with httpx.Client(timeout=5) as client:
        before = [quote_requests(client, url) for url in replicas]
        for _ in range(requests):
            # A fresh connection each time, as separate visitors come.
            assert httpx.get(f"{stack.price}/api/quotes/AAPL", timeout=5).status_code == 200
        after = [quote_requests(client, url) for url in replicas]
    counted = [later - earlier for earlier, later in zip(before, after, strict=True)]
    assert sum(counted) >= requests, counted
    # Round robin: every replica took its share (other callers could only add to it).
    assert all(share >= requests / len(replicas) / 2 for share in counted), counted


def status_rows(shown: str) -> dict[str, list[str]]:
    """The cells of each row of `stockday status`, by replica name."""
    rows = {}
    for line in shown.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) >= 8 and cells[1]:
            rows[cells[1]] = cells
    return rows


def test_status_shows_every_replica_ready_with_its_figures(traced_stack: RunningStack) -> None:
    stack = traced_stack
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.get(stack.frontend + "/").status_code == 200
    shown = ""

    def all_in_rotation() -> bool:
        nonlocal shown
        shown = status_once(stack)
        rows = status_rows(shown)
        http = [
            r.name
            for s in ("frontend", "stock-symbol", "stock-price")
            for r in stack.replicas_of(s)
        ]
        return all(name in rows and rows[name][5] == "UP" for name in http)

    # HAProxy puts a replica in rotation after two good checks, half a second apart.
    wait_until(all_in_rotation, 10, lambda: shown)
    rows = status_rows(shown)
    # zone, replica, pid, address, health, in rotation, restarts, requests, errors, p50, p99
    for service in ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker"):
        for replica in stack.replicas_of(service):
            cells = rows[replica.name]
            assert cells[2] == str(stack.pid_of(replica.name)), shown
            assert cells[3] == f"{replica.host}:{replica.port}", shown
            assert cells[4] == "ready", shown
            # HTTP replicas are in HAProxy's rotation; nothing balances consumers.
            assert cells[5] == ("UP" if replica.is_http else "-"), shown
    assert rows["haproxy"][4] == "ready", shown
    # The figures: the five page views above, counted by the frontend replicas that took them.
    served = sum(float(rows[r.name][7]) for r in stack.replicas_of("frontend"))
    assert served >= 5, shown


def test_status_without_a_stack_says_so(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "stockday", "status", "--once", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 1
    assert "no running stack" in shown.stdout

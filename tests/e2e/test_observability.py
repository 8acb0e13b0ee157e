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
from tests.support.stack import RunningStack, free_port_base

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


def test_metrics_count_every_worker(traced_stack: RunningStack) -> None:
    """uvicorn's workers share one metrics view: a scrape counts every worker's requests."""
    stack = traced_stack
    with httpx.Client(timeout=5) as client:
        for _ in range(40):
            # A fresh connection each time, so the requests spread over the workers.
            assert httpx.get(f"{stack.price}/api/quotes/AAPL", timeout=5).status_code == 200
        text = client.get(f"{stack.price}/metrics").text
    counted = sum(
        float(value)
        for value in re.findall(
            r'^stockday_http_requests_total\{[^}]*route="/api/quotes/\{symbol\}"[^}]*\} (\S+)$',
            text,
            re.MULTILINE,
        )
    )
    assert counted >= 40, text


def test_status_shows_every_service_ready_with_its_figures(traced_stack: RunningStack) -> None:
    stack = traced_stack
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.get(stack.frontend + "/").status_code == 200
    shown = subprocess.run(
        [sys.executable, "-m", "stockday", "status", "--once", "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    for service in ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker"):
        line = next(line for line in shown.splitlines() if service in line)
        assert "ready" in line and "not ready" not in line, shown
    frontend = next(line for line in shown.splitlines() if "frontend" in line)
    assert f"{stack.replicas} workers" in frontend, shown


def test_status_without_a_stack_says_so(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "stockday", "status", "--once", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 1
    assert "no running stack" in shown.stdout

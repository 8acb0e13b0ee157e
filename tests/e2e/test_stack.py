"""End to end: the whole stack as real processes, driven over HTTP like a browser would."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests import sample_images
from tests.e2e.stack_process import RunningStack, free_port_base

pytestmark = pytest.mark.e2e


def _run(data_dir: Path) -> Iterator[RunningStack]:
    running = RunningStack(data_dir, free_port_base())
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A stack of its own, for tests that restart or kill parts of it."""
    yield from _run(tmp_path / "data")


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One stack for the tests that only look at it (starting one costs seconds)."""
    yield from _run(tmp_path_factory.mktemp("shared") / "data")


def wait_for_logo(symbol_api: httpx.Client, symbol: str, deadline: float) -> dict[str, object]:
    while True:
        stock = symbol_api.get(f"/api/stocks/{symbol}").json()
        if stock["logo"]["state"] != "pending" or time.monotonic() > deadline:
            return stock  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_add_a_stock_with_a_logo_then_restart(stack: RunningStack) -> None:
    with stack.client(stack.frontend) as site, stack.client(stack.symbol) as symbol_api:
        # Empty store: a friendly home page, not an error.
        empty_home = site.get("/")
        assert empty_home.status_code == 200

        # The browser uploads the logo as soon as the file is picked...
        form_page = site.get("/stocks/new")
        assert form_page.status_code == 200
        logo = sample_images.png(640, 320)
        uploaded = site.post("/uploads", files={"file": ("acme.png", logo, "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        upload_id = uploaded.json()["upload_id"]

        # ...then the form is submitted with the upload id.
        fields = {"symbol": "ACME", "name": "Acme Corporation", "upload_id": upload_id}
        for name, value in re.findall(
            r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', form_page.text
        ):
            fields.setdefault(name, value)
        fields["upload_id"] = upload_id
        submitted_at = time.monotonic()
        created = site.post("/stocks", data=fields, follow_redirects=False)
        assert created.status_code == 303, created.text
        assert created.headers["location"].endswith("/stocks/ACME")

        stock = wait_for_logo(symbol_api, "ACME", submitted_at + 5.0)
        assert stock["logo"]["state"] == "ready", stock  # type: ignore[index]
        assert time.monotonic() - submitted_at < 5.0
        logo_url = stock["logo"]["url"]  # type: ignore[index]
        served = site.get(logo_url)
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        image = Image.open(io.BytesIO(served.content))
        assert image.format == "WEBP"
        assert max(image.size) <= 256
        assert image.size[0] == 2 * image.size[1]  # aspect ratio kept

        home = site.get("/")
        assert home.status_code == 200
        assert "ACME" in home.text
        page = site.get("/stocks/ACME")
        assert page.status_code == 200
        assert logo_url in page.text

    assert stack.stop() == 0
    stack.start()
    with stack.client(stack.frontend) as site, stack.client(stack.symbol) as symbol_api:
        stock = symbol_api.get("/api/stocks/ACME").json()
        assert stock["name"] == "Acme Corporation"
        assert stock["logo"]["state"] == "ready"
        assert site.get(stock["logo"]["url"]).status_code == 200
        assert "ACME" in site.get("/watchlist").text


def test_every_service_reports_live_and_ready(shared_stack: RunningStack) -> None:
    stack = shared_stack
    from stockday.stack import health_ports

    output = stack.output()
    for service in ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker"):
        assert service in output  # the status table
        assert list((stack.data_dir / "logs").glob(f"{service}-*.log"))
    with httpx.Client(timeout=5) as client:
        for service in ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker"):
            for port in health_ports(service, stack.port_base, stack.replicas):
                assert client.get(f"http://127.0.0.1:{port}/api/ping").status_code == 200
                assert client.get(f"http://127.0.0.1:{port}/api/ready").status_code == 200
                assert client.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def _children(parent: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_killed_replica_is_replaced(stack: RunningStack) -> None:
    import os
    import signal

    from stockday.stack import health_ports

    consumer_port = health_ports("logo-resizer", stack.port_base, stack.replicas)[0]
    symbol_port = stack.port_base + 1
    with httpx.Client(timeout=2) as client:

        def pid_at(port: int) -> int | None:
            try:
                return int(client.get(f"http://127.0.0.1:{port}/api/ping").json()["pid"])
            except httpx.HTTPError:
                return None

        consumer_pid = pid_at(consumer_port)
        worker_pid = pid_at(symbol_port)
        assert consumer_pid and worker_pid
        master = _ppid(worker_pid)
        workers_before = _children(master)
        assert worker_pid in workers_before
        os.kill(consumer_pid, signal.SIGKILL)
        os.kill(worker_pid, signal.SIGKILL)

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pid_at(consumer_port) not in (None, consumer_pid):
                break
            time.sleep(0.1)
        assert pid_at(consumer_port) not in (None, consumer_pid)
        # uvicorn's supervisor replaced the killed stock-symbol worker.
        while time.monotonic() < deadline:
            now = _children(master)
            if worker_pid not in now and len(now) == len(workers_before):
                break
            time.sleep(0.1)
        assert worker_pid not in _children(master)
        assert len(_children(master)) == len(workers_before)
        assert client.get(f"http://127.0.0.1:{symbol_port}/api/ready").status_code == 200


def test_seed_adds_demo_stocks_whose_logos_become_ready(shared_stack: RunningStack) -> None:
    stack = shared_stack
    import subprocess
    import sys

    from stockday.cli import DEMO_STOCKS

    seed = [sys.executable, "-m", "stockday", "seed", "--port-base", str(stack.port_base)]
    first = subprocess.run(seed, capture_output=True, text=True, timeout=60, check=True)
    assert f"added {len(DEMO_STOCKS)} demo stocks" in first.stdout
    again = subprocess.run(seed, capture_output=True, text=True, timeout=60, check=True)
    assert "added 0 demo stocks" in again.stdout
    with stack.client(stack.symbol) as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stocks = api.get("/api/stocks").json()["items"]
            if all(s["logo"]["state"] == "ready" for s in stocks):
                break
            time.sleep(0.1)
        assert len(stocks) == len(DEMO_STOCKS)
        assert {s["logo"]["state"] for s in stocks} == {"ready"}

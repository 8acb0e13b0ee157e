"""The stack on its AWS backends: started with its own emulator, and with memcached going away."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import memcached_server
from tests.support.stack import RunningStack, free_port_base
from tests.support.waiting import wait_for_line

pytestmark = pytest.mark.e2e


def test_up_with_the_emulator_serves_the_site(tmp_path: Path) -> None:
    """`stockday up --backend aws --emulator`, as the README says, on fresh ports."""
    port_base = free_port_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STOCKDAY_"))}
    output = tmp_path / "up.out"
    with open(output, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stockday",
                "up",
                "--backend",
                "aws",
                "--emulator",
                "--port-base",
                str(port_base),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
    try:
        wait_for_line(output, "Stock-of-the-Day is at", 90, process)
        text = output.read_text()
        assert "AWS emulator (moto) at" in text
        with httpx.Client(base_url=f"http://127.0.0.1:{port_base}", timeout=10) as site:
            assert site.get("/").status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port_base + 1}", timeout=10) as api:
            created = api.post("/api/stocks", json={"symbol": "EMU", "name": "Emulated"})
            assert created.status_code == 201, created.text
            assert api.get("/api/stocks/random").json()["symbol"] == "EMU"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0, output.read_text()


def test_pages_are_served_while_memcached_is_down(tmp_path: Path) -> None:
    with memcached_server() as memcached:
        stack = RunningStack(tmp_path / "data", free_port_base(), backend="aws")
        stack.env["STOCKDAY_MEMCACHED_SERVERS"] = memcached.address
        stack.start()
        try:
            with stack.client(stack.symbol) as api, stack.client(stack.frontend) as site:
                for symbol in ("AAA", "BBB"):
                    created = api.post("/api/stocks", json={"symbol": symbol, "name": symbol})
                    assert created.status_code == 201, created.text
                assert site.get("/").status_code == 200  # prices now cached in memcached

                memcached.process.kill()
                memcached.process.wait()

                # Slower at most by the cache's timeout now and then, never broken.
                for _ in range(20):
                    page = site.get("/")
                    assert page.status_code == 200
                    assert "AAA" in page.text or "BBB" in page.text
                    assert site.get("/stocks/AAA").status_code == 200
                ready = api.get("/api/ready")
                assert ready.status_code == 200, ready.text  # the cache is not a dependency
                # The rate limits count in memcached too: without it creates are let through.
                for symbol in ("CCC", "DDD", "EEE", "FFF"):
                    assert submit_form(site, symbol).status_code == 303
            assert fail_open_total(stack) >= 4
        finally:
            stack.stop()


def submit_form(site: httpx.Client, symbol: str) -> httpx.Response:
    page = site.get("/stocks/new").text
    fields = dict(re.findall(r'type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"', page))
    form = {**fields, "symbol": symbol, "name": f"{symbol} Inc."}
    return site.post("/stocks", data=form, follow_redirects=False)


def fail_open_total(stack: RunningStack) -> float:
    """Requests the frontend replicas let through unchecked, from their own metrics."""
    total = 0.0
    for replica in stack.replicas_of("frontend"):
        metrics = httpx.get(f"{stack.replica_url(replica)}/metrics", timeout=5).text
        found = re.search(r"^stockday_rate_limit_fail_open_total ([0-9.e+]+)$", metrics, re.M)
        total += float(found.group(1)) if found else 0.0
    return total

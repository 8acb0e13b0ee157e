"""The release checks of the pipeline, on the running stack: smoke test and canary analysis.

`stockday smoke` passes on a healthy site and fails where no site answers.

The stack runs as the README starts it; a canary frontend (one more uvicorn process of the same
code, beside the stable replicas, as one canary pod beside the stable ones) takes about 30 % of
the page views. `stockday canary analyze` reads both sides' /metrics (every stable replica's
own) twice, a window apart, and must answer roll back for a canary started with
``STOCKDAY_FAULT_ERROR_RATE=0.2`` and promote for a healthy one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stockday.runtime.catalog import uvicorn_args
from tests.support.ports import free_port
from tests.support.stack import RunningStack, free_port_base

pytestmark = pytest.mark.e2e

CANARY_SHARE = 0.3
WINDOW_SECONDS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("canary") / "data", free_port_base())
    running.start()
    with running.client(running.symbol) as api:
        for symbol in ("CANA", "CANB", "CANC"):
            assert api.post("/api/stocks", json={"symbol": symbol, "name": symbol}).is_success
    yield running
    running.stop()


class CanaryFrontend:
    """One more frontend process on the stable stack's backends: the canary replica."""

    def __init__(self, stack: RunningStack, fault_error_rate: float, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **stack.env}
        env["STOCKDAY_SYMBOL_URL"] = stack.symbol
        env["STOCKDAY_PRICE_URL"] = stack.price
        env["STOCKDAY_FAULT_ERROR_RATE"] = str(fault_error_rate)
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", *uvicorn_args("frontend", "127.0.0.1", self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, log.read_text()
            time.sleep(0.1)
        raise TimeoutError(f"canary frontend not ready:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()  # never leave a replica behind, even a stuck one
            self.process.wait()
            raise
        finally:
            self.log.close()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockday", *args], capture_output=True, text=True, timeout=timeout
    )


def stable_metrics(stack: RunningStack) -> list[str]:
    """One ``--stable`` option per frontend replica, its own /metrics (not through HAProxy,
    which would answer from a different replica on each read)."""
    options = []
    for replica in stack.replicas_of("frontend"):
        options += ["--stable", f"{stack.replica_url(replica)}/metrics"]
    return options


def analyze_under_traffic(stack: RunningStack, canary: CanaryFrontend) -> dict[str, object]:
    """Page views split 70/30 while `stockday canary analyze` watches one window of them."""
    stop = threading.Event()
    served = {"stable": 0, "canary": 0}

    def visitor(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                side = "canary" if rng.random() < CANARY_SHARE else "stable"
                client.get(f"{canary.url if side == 'canary' else stack.frontend}/")
                served[side] += 1

    visitors = [threading.Thread(target=visitor, args=(seed,)) for seed in range(2)]
    for thread in visitors:
        thread.start()
    try:
        result = run_cli(
            "canary",
            "analyze",
            # Every stable replica exports its own metrics: the stable side is all of them.
            *stable_metrics(stack),
            "--canary",
            f"{canary.url}/metrics",
            "--service",
            "frontend",
            "--window",
            str(WINDOW_SECONDS),
            "--min-requests",
            "50",
            "--json",
            timeout=WINDOW_SECONDS + 60,
        )
    finally:
        stop.set()
        for thread in visitors:
            thread.join()
    assert result.stdout.startswith("{"), result.stdout + result.stderr
    verdict: dict[str, object] = json.loads(result.stdout)
    verdict["exit_code"] = result.returncode
    print(f"served {served}; verdict {verdict}")
    return verdict


def test_canary_failing_a_fifth_of_requests_is_rolled_back(
    stack: RunningStack, tmp_path: Path
) -> None:
    canary = CanaryFrontend(stack, fault_error_rate=0.2, log=tmp_path / "canary.log")
    try:
        verdict = analyze_under_traffic(stack, canary)
    finally:
        canary.stop()
    assert verdict["decision"] == "rollback"
    assert verdict["exit_code"] == 1
    reasons = verdict["reasons"]
    assert isinstance(reasons, list)
    assert any(
        "canary error rate" in reason and "above the allowed" in reason for reason in reasons
    )
    canary_figures = verdict["canary"]
    assert isinstance(canary_figures, dict)
    assert canary_figures["requests"] >= 50
    assert 0.1 <= canary_figures["error_rate"] <= 0.3


def test_healthy_canary_is_promoted(stack: RunningStack, tmp_path: Path) -> None:
    canary = CanaryFrontend(stack, fault_error_rate=0.0, log=tmp_path / "canary.log")
    try:
        verdict = analyze_under_traffic(stack, canary)
    finally:
        canary.stop()
    assert verdict["decision"] == "promote", verdict["reasons"]
    assert verdict["exit_code"] == 0
    stable_figures, canary_figures = verdict["stable"], verdict["canary"]
    assert isinstance(stable_figures, dict) and isinstance(canary_figures, dict)
    assert canary_figures["errors"] == 0
    # The split reached both sides in about the intended proportion.
    share = canary_figures["requests"] / (canary_figures["requests"] + stable_figures["requests"])
    assert 0.2 <= share <= 0.4


def test_smoke_passes_on_the_running_site(stack: RunningStack) -> None:
    result = run_cli("smoke", stack.frontend, "--wait", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") >= 4
    assert "failed" not in result.stdout


def test_smoke_fails_where_no_site_answers() -> None:
    result = run_cli("smoke", f"http://127.0.0.1:{free_port()}", "--wait", "0")
    assert result.returncode == 1
    assert "ConnectError" in result.stdout

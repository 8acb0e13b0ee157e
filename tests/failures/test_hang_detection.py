"""The supervisor's hang detection, on stand-in consumers whose hangs the test controls: one
whose event loop blocks (alive, listening, silent) and one that never answers at all."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from stockday.devstack import supervisor as stack_module
from stockday.devstack.processes import alive
from stockday.devstack.supervisor import Child, Stack
from stockday.runtime.settings import Settings
from tests.failures.processes import ping_pid
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

HANG_SECONDS = 2.0

# Answers /api/ping with its pid until the flag file names its pid; then the next request
# blocks its only thread forever, as a blocked event loop would: the port still accepts
# connections, nothing answers.
STAND_IN = """
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

port, flag = int(sys.argv[1]), Path(sys.argv[2])

class Ping(BaseHTTPRequestHandler):
    def do_GET(self):
        if flag.exists() and flag.read_text() == str(os.getpid()):
            time.sleep(3600)
        body = json.dumps({"pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", port), Ping).serve_forever()
"""
SILENT = "import time; time.sleep(3600)"


def test_a_blocked_consumer_is_killed_and_one_that_never_answers_only_after_its_grace(
    tmp_path: Path,
) -> None:
    said: list[tuple[float, str]] = []
    stack = Stack(
        data_dir=tmp_path,
        port_base=free_port(),
        replicas=1,
        settings=Settings(hang_seconds=HANG_SECONDS),
        say=lambda line: said.append((time.monotonic(), line)),
    )
    flag = tmp_path / "hang-this-pid"
    blocking_port, silent_port = free_port(), free_port()
    stack.children = [
        Child(
            "logo-resizer",
            0,
            blocking_port,
            [sys.executable, "-c", STAND_IN, str(blocking_port), str(flag)],
        ),
        Child("queue-worker", 0, silent_port, [sys.executable, "-c", SILENT]),
    ]
    blocking, silent = stack.children
    slowest_pass = 0.0
    try:
        stack.start()
        silent_started = silent.started_at
        silent_pid = silent.pid

        def supervise_until(done: Callable[[], bool], timeout: float) -> bool:
            nonlocal slowest_pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                started = time.perf_counter()
                stack.supervise_once()
                slowest_pass = max(slowest_pass, time.perf_counter() - started)
                if done():
                    return True
                time.sleep(0.05)
            return False

        with httpx.Client(timeout=1.0) as client:
            # The stand-in answers; the supervisor's probes see it answer.
            assert supervise_until(lambda: blocking.answered_at is not None, 10)
            victim = ping_pid(client, blocking_port)
            assert victim is not None and victim == blocking.pid
            flag.write_text(str(victim))
            blocked_at = time.monotonic()
            assert ping_pid(client, blocking_port) is None  # blocked now: the request times out

            # Killed after the hang limit and replaced by a process that answers.
            assert supervise_until(
                lambda: ping_pid(client, blocking_port) not in (None, victim), 15
            )
            replaced_after = time.monotonic() - blocked_at
            assert not alive(victim)
            assert blocking.restarts == 1

            # The one that never answered is left alone for its start grace plus the hang limit.
            assert supervise_until(lambda: silent.restarts == 1, 20)
        killed_silent = [at for at, line in said if f"pid {silent_pid}" in line and "hung" in line]
        assert len(killed_silent) == 1
        silent_after = killed_silent[0] - silent_started
    finally:
        stack.stop()
    print(
        f"\nblocked stand-in replaced {replaced_after:.1f}s after it blocked "
        f"(hang limit {HANG_SECONDS}s, probes every {stack_module.PING_INTERVAL_SECONDS}s); "
        f"never-answering one killed {silent_after:.1f}s after its start; "
        f"slowest supervisor pass {slowest_pass * 1000:.1f} ms"
    )
    limit = HANG_SECONDS + stack_module.PING_INTERVAL_SECONDS
    assert replaced_after < limit + 3  # + restart backoff and the stand-in's start
    assert silent_after >= stack_module.START_GRACE_SECONDS + HANG_SECONDS
    assert silent_after < stack_module.START_GRACE_SECONDS + limit + 1
    assert slowest_pass < 0.1  # probes never wait on a child

"""The supervisor's hang detection, in this process, on stand-in replicas whose hangs the test
controls: one whose only thread blocks (alive, listening, silent), one that never answers at
all, and one that keeps answering while the supervisor itself is stalled."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stockday.devstack import children, probes
from stockday.devstack import supervisor as stack_module
from stockday.devstack.children import Child
from stockday.devstack.processes import alive
from stockday.devstack.supervisor import Stack
from stockday.devstack.topology import Replica, Topology
from stockday.runtime.settings import Settings
from tests.failures.replicas import answering_pid
from tests.support.ports import free_port
from tests.support.stack import free_port_base

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

HANG_SECONDS = 2.0
STALL_SECONDS = 60.0  # the supervisor's own stall: a suspended laptop, a stopped `up`

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


class ShiftedClock:
    """The supervisor's ``time`` module, with a monotonic clock the test can move forward."""

    def __init__(self) -> None:
        self.shift = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.shift

    @staticmethod
    def time() -> float:
        return time.time()


class Supervised:
    """A supervisor in this process over stand-in children, its passes run by the test."""

    def __init__(self, data_dir: Path) -> None:
        self.said: list[tuple[float, str]] = []
        self.stack = Stack(
            data_dir=data_dir,
            topology=Topology(free_port_base(1), replicas=1),
            settings=Settings(hang_seconds=HANG_SECONDS),
            say=lambda line: self.said.append((time.monotonic(), line)),
        )
        self.flag = data_dir / "hang-this-pid"
        self.slowest_pass = 0.0

    def child(self, service: str, argv: list[str], port: int) -> Child:
        zone = self.stack.topology.zone_list[0]
        return Child(f"{service}-a0", Replica(service, 0, zone, port), argv)

    def stand_in(self, service: str) -> Child:
        port = free_port()
        argv = [sys.executable, "-c", STAND_IN, str(port), str(self.flag)]
        return self.child(service, argv, port)

    def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Supervisor passes until ``done()``, False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = time.perf_counter()
            self.stack.supervise_once()
            self.slowest_pass = max(self.slowest_pass, time.perf_counter() - started)
            if done():
                return True
            time.sleep(0.05)
        return False

    def hung(self, pid: int | None) -> list[float]:
        """When the supervisor said it found ``pid`` hung."""
        return [at for at, line in self.said if f"pid {pid})" in line and "hung" in line]


@pytest.fixture
def supervised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Supervised]:
    # Not a subreaper: that would make pytest itself adopt every orphan of the session.
    prctl = children._prctl
    monkeypatch.setattr(
        children,
        "_prctl",
        lambda option, value: (
            None if option == children.PR_SET_CHILD_SUBREAPER else prctl(option, value)
        ),
    )
    supervised = Supervised(tmp_path)
    yield supervised
    supervised.stack.stop()


def test_a_blocked_replica_is_killed_and_one_that_never_answers_only_after_its_grace(
    supervised: Supervised,
) -> None:
    stack = supervised.stack
    blocking = supervised.stand_in("logo-resizer")
    silent_port = free_port()
    silent = supervised.child("queue-worker", [sys.executable, "-c", SILENT], silent_port)
    stack.children = [blocking, silent]
    stack.start()
    silent_started, silent_pid = silent.spawned_at, silent.pid
    assert blocking.replica is not None

    with httpx.Client(timeout=1.0) as client:
        # The stand-in answers; the supervisor's probes see it answer.
        assert supervised.until(lambda: blocking.answered_at is not None, 10)
        victim = answering_pid(client, blocking.replica)
        assert victim is not None and victim == blocking.pid
        supervised.flag.write_text(str(victim))
        blocked_at = time.monotonic()
        assert answering_pid(client, blocking.replica) is None  # blocked: the request times out

        # Killed after the hang limit and replaced by a process that answers.
        assert supervised.until(
            lambda: answering_pid(client, blocking.replica) not in (None, victim), 15
        )
        replaced_after = time.monotonic() - blocked_at
        assert not alive(victim)
        assert blocking.restarts == 1

        # The one that never answered is left alone for its start grace plus the hang limit.
        assert supervised.until(lambda: silent.restarts == 1, 20)
    killed_silent = supervised.hung(silent_pid)
    assert len(killed_silent) == 1
    silent_after = killed_silent[0] - silent_started
    print(
        f"\nblocked stand-in replaced {replaced_after:.1f}s after it blocked "
        f"(hang limit {HANG_SECONDS}s, probes every {stack_module.PING_INTERVAL_SECONDS}s); "
        f"never-answering one killed {silent_after:.1f}s after its start; "
        f"slowest supervisor pass {supervised.slowest_pass * 1000:.1f} ms"
    )
    limit = HANG_SECONDS + stack_module.PING_INTERVAL_SECONDS
    assert replaced_after < limit + 3  # + restart backoff and the stand-in's start
    assert silent_after >= stack_module.START_GRACE_SECONDS + HANG_SECONDS
    assert silent_after < stack_module.START_GRACE_SECONDS + limit + 1
    # A probe that waited on a silent child would hold the pass for its whole timeout; half of it
    # leaves room for a busy machine's scheduling without letting such a wait through.
    assert supervised.slowest_pass < probes.PROBE_TIMEOUT_SECONDS / 2


def test_a_stall_of_the_supervisor_itself_condemns_no_replica(
    supervised: Supervised, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ShiftedClock()
    monkeypatch.setattr(stack_module, "time", clock)
    stack = supervised.stack
    replica = supervised.stand_in("frontend")
    stack.children = [replica]
    stack.start()
    pid = replica.pid
    assert supervised.until(lambda: replica.answered_at is not None and replica.probe is None, 10)

    # Nothing has run the supervisor for a minute: its last answer from the replica is a
    # minute old, far past the hang limit, but the replica was never asked meanwhile.
    clock.shift += STALL_SECONDS
    resumed = clock.monotonic()
    assert supervised.until(lambda: (replica.answered_at or 0.0) >= resumed, 5)
    print(f"\nafter a {STALL_SECONDS:.0f}s stall of the supervisor: {supervised.said or 'quiet'}")
    assert replica.pid == pid and alive(pid)
    assert replica.restarts == 0
    assert supervised.hung(pid) == []

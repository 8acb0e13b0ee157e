"""One replica stopped with SIGSTOP (hung, not dead): within 15 s no request goes to it."""

from __future__ import annotations

import time

import httpx
import pytest

from stockday.devstack.processes import alive, parent, uvicorn_workers
from stockday.devstack.supervisor import health_ports
from tests.failures.conftest import StartStack
from tests.failures.processes import Signals, ping_pid
from tests.support.stack import add_stock

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPLACED_WITHIN = 15.0  # seconds: the hang limit (10 s) and one restart, with room to spare
FRESH_REQUESTS = 50
QUICK = 1.0  # seconds: a request that takes longer than this did not succeed quickly


def fresh_get(url: str) -> tuple[httpx.Response | None, float]:
    """One GET on a connection of its own (a new client each time, as a new visitor would)."""
    started = time.monotonic()
    try:
        with httpx.Client(timeout=5.0) as client:
            response: httpx.Response | None = client.get(url)
    except httpx.HTTPError:
        response = None
    return response, time.monotonic() - started


def test_a_stopped_frontend_worker_is_killed_and_replaced(start_stack: StartStack) -> None:
    stack = start_stack()
    ping = f"{stack.frontend}/api/ping"
    with httpx.Client(timeout=5.0) as client, Signals() as signals:
        victim = ping_pid(client, stack.port_base)
        assert victim is not None
        master = parent(victim)
        assert master is not None
        workers = uvicorn_workers(master)
        assert victim in workers and len(workers) == stack.replicas

        signals.stop(victim)
        stopped_at = time.monotonic()
        # Fresh-connection requests while the worker is stopped: the live worker accepts them
        # from the shared listening socket, so none should wait for the stopped one.
        during: list[tuple[int | None, float]] = []
        while alive(victim) and time.monotonic() < stopped_at + REPLACED_WITHIN:
            response, took = fresh_get(ping)
            pid = int(response.json()["pid"]) if response and response.status_code == 200 else None
            during.append((pid, took))
            time.sleep(0.05)
        killed_after = time.monotonic() - stopped_at
        print(
            f"\nfrontend worker {victim} stopped: killed by uvicorn after {killed_after:.1f}s; "
            f"{len(during)} requests meanwhile, slowest {max(t for _, t in during):.3f}s, "
            f"failed {sum(p is None for p, _ in during)}"
        )
        assert not alive(victim), f"worker {victim} still there after {REPLACED_WITHIN}s"
        assert killed_after <= REPLACED_WITHIN
        assert all(pid not in (None, victim) for pid, _ in during), during
        assert all(took < QUICK for _, took in during), during

        # A series of fresh connections: all answered quickly, none by the stopped worker.
        after = [fresh_get(ping) for _ in range(FRESH_REQUESTS)]
        answered_by = {int(r.json()["pid"]) for r, _ in after if r and r.status_code == 200}
        slowest = max(took for _, took in after)
        print(f"then {FRESH_REQUESTS} fresh requests: slowest {slowest:.3f}s, pids {answered_by}")
        assert all(r is not None and r.status_code == 200 for r, _ in after)
        assert slowest < QUICK
        assert victim not in answered_by

        # uvicorn started a replacement: the master has its full count of workers again.
        deadline = time.monotonic() + 10
        while len(now := uvicorn_workers(master)) < stack.replicas and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim not in now and len(now) == stack.replicas
        assert client.get(f"{stack.frontend}/").status_code == 200


def test_a_stopped_logo_resizer_is_killed_and_replaced(start_stack: StartStack) -> None:
    stack = start_stack()
    port = health_ports("logo-resizer", stack.port_base, stack.replicas)[0]
    with httpx.Client(timeout=2.0) as client, Signals() as signals:
        victim = ping_pid(client, port)
        assert victim is not None
        signals.stop(victim)
        stopped_at = time.monotonic()

        # A stock with a logo added while the replica is hung still gets its logo.
        with stack.client(stack.symbol) as api:
            add_stock(api, "HUNG")

            replacement = None
            killed_after: float | None = None
            while time.monotonic() < stopped_at + REPLACED_WITHIN + 5:
                if killed_after is None and not alive(victim):
                    killed_after = time.monotonic() - stopped_at
                replacement = ping_pid(client, port)
                if replacement not in (None, victim):
                    break
                time.sleep(0.1)
            replaced_after = time.monotonic() - stopped_at
            print(
                f"\nlogo-resizer {victim} stopped: killed by the stack after "
                f"{'?' if killed_after is None else f'{killed_after:.1f}'}s; "
                f"port {port} answered by new pid {replacement} after {replaced_after:.1f}s"
            )
            assert replacement not in (None, victim)
            assert replaced_after <= REPLACED_WITHIN
            assert not alive(victim)
            assert "has not answered /api/ping" in stack.output()

            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                logo = api.get("/api/stocks/HUNG").json()["logo"]
                if logo["state"] != "pending":
                    break
                time.sleep(0.1)
            assert logo["state"] == "ready", logo

"""A replica stopped with SIGSTOP (hung, not dead): out of rotation, then killed and replaced.

A stopped process keeps its port: connections to it are accepted by the kernel, and nothing
answers them. For an HTTP replica, HAProxy's readiness checks fail and take it out of rotation
within two seconds, while page views keep being served (one sent to the stopped replica before
that is retried on the other after the server timeout, or at once when the replica is killed).
For any replica, `stockday up`'s liveness probe finds it silent and, after the hang limit
(STOCKDAY_HANG_SECONDS, 3 s here), kills it; the restarted process answers and, for an HTTP
replica, HAProxy takes it back in. A consumer's work waits for the healthy replica, not for it.
"""

from __future__ import annotations

import time

import httpx
import pytest

from stockday.devstack.processes import alive, stopped
from tests.failures.conftest import StartStack
from tests.failures.processes import Signals
from tests.failures.replicas import Recovery, answering_pid, wait_for_recovery, watch
from tests.support.load import Load, lost_writes
from tests.support.stack import add_stock
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

HANG_SECONDS = "3"
OUT_OF_ROTATION_WITHIN = 2.0  # seconds: HAProxy's checks (at most 1.55 s by their settings)
RECOVERY_TIMEOUT = 30.0  # the hang limit, the restart backoff, a start and HAProxy's rise
VISITORS = 3
STEADY_PAGE_VIEWS = 100
AFTER_PAGE_VIEWS = 30  # served after the replacement is back in rotation
MIN_SERVED = 0.999
FRESH = 20  # requests on fresh connections while the replica is out of rotation, still stopped
# Seconds: a request sent to the stopped replica would wait for HAProxy's server timeout (10 s);
# one served by the other replica on a busy machine takes a fraction of a second.
QUICK = 3.0


def test_a_stopped_frontend_replica_is_taken_out_killed_and_replaced(
    start_stack: StartStack,
) -> None:
    stack = start_stack(STOCKDAY_HANG_SECONDS=HANG_SECONDS)
    replica = stack.replicas_of("frontend")[0]
    fresh: list[tuple[int | None, float]] = []
    with (
        httpx.Client(timeout=2.0) as client,
        Load(stack, visitors=VISITORS) as load,
        Signals() as signals,  # resumes what it stopped first, should the test fail
    ):
        traffic = load.traffic
        wait_until(lambda: sum(o.ok for o in traffic.page_views) >= STEADY_PAGE_VIEWS, 30)
        victim = stack.pid_of(replica.name)
        signals.stop(victim)
        recovery = Recovery(replica.name, victim, time.monotonic())

        def recovered() -> bool:
            done = watch(stack, client, replica, recovery)
            # Out of rotation and still stopped: fresh connections are answered at once, by
            # the other replica.
            if recovery.out_after is not None and stopped(victim) and len(fresh) < FRESH:
                fresh.append(fresh_ping(stack.frontend))
            return done

        wait_until(recovered, RECOVERY_TIMEOUT, recovery.describe, interval=0.02)
        assert not alive(victim)
        signals.stopped.discard(victim)
        back = time.monotonic()
        wait_until(lambda: sum(o.ok for o in traffic.window(back)) >= AFTER_PAGE_VIEWS, 30)
    lost = lost_writes(stack, traffic.acknowledged)
    slowest = max((took for _, took in fresh), default=0.0)
    print(
        f"\n{recovery.describe()}; {len(fresh)} fresh requests while out of rotation, slowest "
        f"{slowest:.3f}s, answered by {sorted({pid for pid, _ in fresh}, key=str)}; "
        f"{traffic.summary()}; lost {lost}"
    )
    assert recovery.out_after is not None and recovery.out_after <= OUT_OF_ROTATION_WITHIN
    assert fresh and all(pid not in (None, victim) for pid, _ in fresh), fresh
    assert slowest < QUICK
    assert f"(pid {victim}) has not answered /api/ping" in stack.output()
    assert recovery.new_pid not in (None, victim)
    assert traffic.served() >= MIN_SERVED, traffic.summary()
    assert lost == []


def fresh_ping(base: str) -> tuple[int | None, float]:
    """/api/ping through HAProxy on a connection of its own: the pid that answered, and how
    long it took."""
    started = time.monotonic()
    try:
        with httpx.Client(timeout=5.0) as client:
            answer = client.get(f"{base}/api/ping")
        pid = int(answer.json()["pid"]) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        pid = None
    return pid, time.monotonic() - started


def test_a_stopped_logo_resizer_is_killed_and_replaced_and_logos_still_done(
    start_stack: StartStack,
) -> None:
    stack = start_stack(STOCKDAY_HANG_SECONDS=HANG_SECONDS)
    replica = stack.replicas_of("logo-resizer")[0]
    with httpx.Client(timeout=2.0) as client, Signals() as signals:
        victim = stack.pid_of(replica.name)
        assert answering_pid(client, replica) == victim
        signals.stop(victim)
        recovery = Recovery(replica.name, victim, time.monotonic())
        with stack.client(stack.symbol) as api:
            # A stock with a logo added while the replica is hung still gets its logo.
            add_stock(api, "HUNG")
            wait_for_recovery(stack, client, replica, recovery, RECOVERY_TIMEOUT)
            signals.stopped.discard(victim)

            def logo_state() -> str:
                return str(api.get("/api/stocks/HUNG").json()["logo"]["state"])

            wait_until(lambda: logo_state() != "pending", 20, logo_state)
            logo_done_after = time.monotonic() - recovery.signalled_at
            state = logo_state()
    print(f"\n{recovery.describe()}; the logo was {state} after {logo_done_after:.2f}s")
    assert not alive(victim)
    assert f"(pid {victim}) has not answered /api/ping" in stack.output()
    assert state == "ready"

"""Replicas and HAProxy killed with SIGKILL under load: page views served, no write lost.

Each replica is a process of its own behind HAProxy, and `stockday up` restarts whatever dies.
Visitors load pages on kept-alive connections and a writer creates stocks (tests/support/load)
while, one after the other, a replica of each service is killed:
- HAProxy retries a page view whose replica died before answering, on the other replica, and
  its health checks take the dead replica out of rotation until the restarted one answers;
- the supervisor restarts the replica, and HAProxy takes the new process back in;
- a create cut off by a death is retried by the writer (a create is idempotent), so every
  acknowledged one must be readable afterwards.
HAProxy itself is every service's front door: killed, it is restarted within a fraction of a
second, and page views are served again within one second of the kill.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from stockday.devstack.processes import alive
from stockday.devstack.topology import Replica
from tests.failures.conftest import StartStack
from tests.failures.replicas import Recovery, recorded_pid, wait_for_recovery
from tests.support.load import Load, Traffic, lost_writes
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

LOAD_SECONDS = 60.0
FIRST_KILL_AFTER = 5.0
KILL_EVERY_SECONDS = 9.0
# One replica of each, the HTTP services first; the index alternates between the two replicas.
VICTIMS = ("frontend", "stock-symbol", "stock-price", "logo-resizer", "queue-worker")
RECOVERY_TIMEOUT = 30.0  # restart backoff, a Python service's start and HAProxy's rise checks
VISITORS = 3
MIN_SERVED = 0.999
GATEWAY_BACK_WITHIN = 1.0  # seconds from HAProxy's death to the next page view served
GATEWAY_KILLS = 2
STEADY_PAGE_VIEWS = 100  # served before each HAProxy kill, so that every kill meets traffic


def wait_for_page_views(traffic: Traffic, after: float, count: int, timeout: float) -> None:
    wait_until(
        lambda: sum(o.ok for o in traffic.window(after)) >= count,
        timeout,
        lambda: f"fewer than {count} page views served: {traffic.summary()}",
    )


def served_again(traffic: Traffic, killed_at: float) -> float | None:
    """When page views were served again after HAProxy was killed: the first success after the
    first failure the kill caused (a page view answered just before the kill may be recorded
    just after it); if no page view failed at all, the first success after the kill."""
    failed = next((o.at for o in traffic.page_views if o.at > killed_at and not o.ok), None)
    return traffic.first_served_after(killed_at if failed is None else failed)


def kill_replica(stack: RunningStack, replica: Replica) -> Recovery:
    pid = stack.pid_of(replica.name)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return Recovery(replica.name, pid, killed_at)


def test_a_replica_of_each_service_killed_in_turn_under_load(start_stack: StartStack) -> None:
    stack = start_stack()
    recoveries: list[Recovery] = []
    with httpx.Client(timeout=2.0) as client, Load(stack, visitors=VISITORS) as load:
        started = time.monotonic()
        for index, service in enumerate(VICTIMS):
            due = started + FIRST_KILL_AFTER + index * KILL_EVERY_SECONDS
            wait_until(lambda due=due: time.monotonic() >= due, KILL_EVERY_SECONDS + 1)
            replica = stack.replicas_of(service)[index % stack.replicas]
            recovery = kill_replica(stack, replica)
            recoveries.append(recovery)
            wait_for_recovery(stack, client, replica, recovery, RECOVERY_TIMEOUT)
            print(f"\n{recovery.describe()}")
        end = started + LOAD_SECONDS
        wait_until(lambda: time.monotonic() >= end, LOAD_SECONDS)
    traffic = load.traffic
    lost = lost_writes(stack, traffic.acknowledged)
    print(f"\n{traffic.summary()}; lost writes {lost}")

    assert len(traffic.page_views) >= 500, traffic.summary()
    assert traffic.served() >= MIN_SERVED, traffic.summary()
    assert len(traffic.acknowledged) >= 100, traffic.summary()
    assert lost == []
    for recovery in recoveries:
        assert recovery.new_pid not in (None, recovery.old_pid), recovery.describe()
        assert not alive(recovery.old_pid), recovery.describe()
        if recovery.name.startswith(("frontend", "stock-")):
            # HAProxy saw the replica die, and took the restarted process back in.
            assert recovery.out_after is not None, recovery.describe()
            assert recovery.back_after is not None, recovery.describe()


def test_haproxy_killed_twice_serves_again_within_a_second(start_stack: StartStack) -> None:
    stack = start_stack()
    kills: list[float] = []
    gaps: list[float] = []
    with Load(stack, visitors=VISITORS) as load:
        traffic = load.traffic
        for _ in range(GATEWAY_KILLS):
            wait_for_page_views(traffic, kills[-1] + 1 if kills else 0.0, STEADY_PAGE_VIEWS, 30)
            pid = stack.pid_of("haproxy")
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            kills.append(killed_at)
            wait_until(
                lambda at=killed_at: served_again(traffic, at) is not None, 10, traffic.summary
            )
            back = served_again(traffic, killed_at)
            assert back is not None
            gaps.append(back - killed_at)
            wait_until(
                lambda old=pid: (
                    recorded_pid(stack, "haproxy") not in (None, old) and not alive(old)
                ),
                10,
                stack.output,
            )
            print(f"\nhaproxy (pid {pid}) killed: page views served again after {gaps[-1]:.3f}s")
        wait_for_page_views(traffic, kills[-1] + 1, STEADY_PAGE_VIEWS, 30)
    outside = [o for o in traffic.page_views if not any(k <= o.at <= k + 1 for k in kills)]
    served_outside = sum(o.ok for o in outside) / len(outside)
    lost = lost_writes(stack, traffic.acknowledged)
    restarts = {c["name"]: c["restarts"] for c in stack.state()["children"]}
    print(
        f"\nHAProxy gaps {[round(g, 3) for g in gaps]}; served outside the kills' seconds "
        f"{100 * served_outside:.3f} % of {len(outside)}; {traffic.summary()}; lost {lost}"
    )
    assert all(gap < GATEWAY_BACK_WITHIN for gap in gaps), gaps
    assert served_outside >= MIN_SERVED, traffic.summary()
    assert len(traffic.acknowledged) >= 20, traffic.summary()
    assert lost == []
    assert restarts.pop("haproxy") == GATEWAY_KILLS
    assert set(restarts.values()) == {0}, restarts  # no replica died with it

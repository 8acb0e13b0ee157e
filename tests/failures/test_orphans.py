"""Nothing the stack starts outlives it, however it ends, and nothing keeps its ports.

`stockday up` starts every child with the kernel's promise to SIGKILL it if `up` dies
(PR_SET_PDEATHSIG), even by SIGKILL and even a stopped child, and adopts whatever a dead child
leaves behind (a subreaper). So:
- `up` killed with SIGKILL: every process it started is gone within seconds, every port of the
  stack is free, and `up` started again on the same data directory starts cleanly;
- replicas and HAProxy killed one after the other, then the stack stopped as usual: every
  process the stack ever ran (the killed ones, their replacements) is gone, every port free.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from stockday.devstack.processes import alive, descendants
from tests.failures.conftest import StartStack
from tests.failures.processes import Signals, wait_until_gone
from tests.failures.replicas import PidLog, recorded_pid, replaced, taken_ports
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

GONE_WITHIN = 10.0  # seconds: the kernel's death signal acts at once; this is room for a busy CI
RESTART_TIMEOUT = 30.0
# One replica of an HTTP service, one of a consumer, and the load balancer, in turn.
KILLED_IN_TURN = ("stock-price-a1", "logo-resizer-a0", "haproxy")
KILLED_JUST_BEFORE_STOP = "frontend-a1"


def everything_below(stack: RunningStack) -> dict[int, str]:
    """Every process of the stack: the state file's, and whatever else runs below `up`."""
    found = {pid: name for name, pid in stack.stack_pids().items()}
    for pid in descendants(stack.pid):
        found.setdefault(pid, "unrecorded")
    return found


def test_a_killed_supervisor_leaves_no_process_and_no_port_and_up_starts_again(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    assert stack.process is not None
    started = everything_below(stack)
    # One process per replica, and HAProxy: nothing that the death signal would not reach.
    assert len(started) == len(stack.state()["children"]), started
    with Signals() as signals:
        # A stopped child is killed as well: SIGKILL needs no cooperation from it.
        frozen = stack.pid_of("stock-symbol-a0")
        signals.stop(frozen)
        killed_at = time.monotonic()
        stack.process.kill()
        stack.process.wait(timeout=10)
        left = wait_until_gone(set(started), GONE_WITHIN)
        gone_after = time.monotonic() - killed_at
        if not alive(frozen):
            signals.stopped.discard(frozen)
    print(f"\n`up` killed: its {len(started)} processes gone after {gone_after:.2f}s")
    assert left == set(), {pid: started[pid] for pid in left}
    wait_until(lambda: taken_ports(stack) == [], GONE_WITHIN, lambda: str(taken_ports(stack)))

    # `up` again on the same data directory and ports: nothing in its way.
    earlier = len(stack.output())  # the same output file: same data directory, same ports
    again = RunningStack(stack.data_dir, stack.port_base)
    try:
        again.start()
        with httpx.Client(timeout=10.0) as client:
            assert client.get(again.frontend + "/").status_code == 200
    finally:
        code = again.stop()
    output = again.output()[earlier:]
    print(f"`up` again: ready in {again.ready_line_seconds:.1f}s")
    assert code == 0, output
    assert "is taken" not in output and "left processes behind" not in output, output
    # No child died fighting for a port (one killed as hung would say -9, SIGKILL).
    died = [line for line in output.splitlines() if "exited with" in line and "-9" not in line]
    assert died == [], output


def test_replicas_and_haproxy_killed_then_a_normal_stop_leaves_nothing(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    seen = PidLog(stack)
    seen.look()
    with httpx.Client(timeout=2.0) as client:
        for name in KILLED_IN_TURN:
            pid = stack.pid_of(name)
            os.kill(pid, signal.SIGKILL)

            def back(name: str = name, pid: int = pid) -> bool:
                seen.look()
                if name == "haproxy":
                    return recorded_pid(stack, name) not in (None, pid)
                replica = next(r for r in stack.topology.all_replicas if r.name == name)
                return replaced(stack, client, replica, pid) is not None

            wait_until(back, RESTART_TIMEOUT, stack.output)
            print(f"\n{name} killed (pid {pid}), restarted as pid {stack.pid_of(name)}")
    # One more killed just before the stop: its restart may or may not have begun.
    os.kill(stack.pid_of(KILLED_JUST_BEFORE_STOP), signal.SIGKILL)
    seen.look()
    below = everything_below(stack)
    for pid, name in below.items():
        seen.seen.setdefault(pid, name)
    assert stack.stop() == 0, stack.output()
    left = wait_until_gone(set(seen.seen), GONE_WITHIN)
    print(f"stopped: {len(seen.seen)} processes seen over the test, {len(left)} left")
    assert len(seen.seen) >= len(stack.topology.all_replicas) + 1 + len(KILLED_IN_TURN)
    assert left == set(), {pid: seen.seen[pid] for pid in left}
    assert taken_ports(stack) == []

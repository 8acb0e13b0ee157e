"""A running stack's replicas as the failure tests watch them: their pids in the stack's state
file, the pid that answers each one's /api/ping, HAProxy's rotation, and the stack's ports."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import httpx

from stockday.devstack.status import rotation
from stockday.devstack.topology import Replica
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until


def rotation_of(stack: RunningStack, client: httpx.Client) -> dict[str, str]:
    """HAProxy's status of each replica (UP, DOWN, "DOWN 1/2"...), from its statistics CSV."""
    return rotation(f"http://127.0.0.1:{stack.topology.stats_port}/", client)


def out_of_rotation(status: str) -> bool:
    return status.startswith("DOWN")


def in_rotation(status: str) -> bool:
    return status == "UP"


def answering_pid(client: httpx.Client, replica: Replica) -> int | None:
    """The pid that answers the replica's own /api/ping, None if nothing answers."""
    try:
        answer = client.get(f"{RunningStack.replica_url(replica)}/api/ping")
        return int(answer.json()["pid"]) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def recorded_pid(stack: RunningStack, name: str) -> int | None:
    """The pid the stack's state file gives ``name`` now (None while it is being rewritten)."""
    try:
        return stack.pid_of(name)
    except (FileNotFoundError, ValueError, KeyError):
        return None


def replaced(stack: RunningStack, client: httpx.Client, replica: Replica, old: int) -> int | None:
    """The replica's new pid once the supervisor has restarted it: recorded in the state file
    and answering /api/ping; None until then."""
    new = recorded_pid(stack, replica.name)
    if new in (None, old):
        return None
    return new if answering_pid(client, replica) == new else None


@dataclass
class Recovery:
    """What became of one killed or stopped replica, in seconds after the signal."""

    name: str
    old_pid: int
    signalled_at: float
    new_pid: int | None = None
    replaced_after: float | None = None
    out_after: float | None = None  # HAProxy's status turned DOWN
    back_after: float | None = None  # UP again, the new process answering
    statuses: list[str] = field(default_factory=list)  # HAProxy's, each change as seen

    def describe(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.2f}s"

        return (
            f"{self.name}: pid {self.old_pid} -> {self.new_pid}, replaced after "
            f"{seconds(self.replaced_after)}, out of rotation after {seconds(self.out_after)}, "
            f"back after {seconds(self.back_after)} ({' > '.join(self.statuses)})"
        )


def watch(stack: RunningStack, client: httpx.Client, replica: Replica, recovery: Recovery) -> bool:
    """One look at a signalled replica, recorded in ``recovery``; whether it has recovered:
    replaced, and for an HTTP replica seen out of HAProxy's rotation and back in."""
    now = time.monotonic() - recovery.signalled_at
    if recovery.new_pid is None and (new := replaced(stack, client, replica, recovery.old_pid)):
        recovery.new_pid, recovery.replaced_after = new, now
    if not replica.is_http:
        return recovery.new_pid is not None
    status = rotation_of(stack, client).get(replica.name, "")
    if not recovery.statuses or recovery.statuses[-1] != status:
        recovery.statuses.append(status)
    if recovery.out_after is None and out_of_rotation(status):
        recovery.out_after = now
    if recovery.out_after is not None and recovery.new_pid is not None and in_rotation(status):
        recovery.back_after = recovery.back_after or now
    return recovery.back_after is not None


def wait_for_recovery(
    stack: RunningStack, client: httpx.Client, replica: Replica, recovery: Recovery, timeout: float
) -> Recovery:
    wait_until(
        lambda: watch(stack, client, replica, recovery),
        timeout,
        lambda: f"not recovered in {timeout:.0f}s: {recovery.describe()}\n{stack.output()[-3000:]}",
        interval=0.05,
    )
    return recovery


def taken_ports(stack: RunningStack) -> list[tuple[str, int]]:
    """The stack's addresses that something still holds (a bind to them fails)."""
    taken = []
    for host, port in stack.topology.ports():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append((host, port))
    return taken


class PidLog:
    """Every pid the stack's state file has named, by name, over the whole test."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.seen: dict[int, str] = {}

    def look(self) -> None:
        try:
            pids = self.stack.stack_pids()
        except (FileNotFoundError, ValueError):
            return
        for name, pid in pids.items():
            self.seen.setdefault(pid, name)

"""The supervisor's children: what it knows of each, and starting and ending them so that
nothing it starts outlives it.

Each child runs in a session of its own, so its process group is it and whatever it starts,
and writes into a pipe to its log file. The kernel SIGKILLs it if the supervisor dies
(``PR_SET_PDEATHSIG``), and the supervisor adopts any process a child leaves behind
(``PR_SET_CHILD_SUBREAPER``) and kills it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from stockday.devstack.probes import PingProbe
from stockday.devstack.topology import FRONT_HOST, Replica

# A child's first restart waits this long; the supervisor doubles it on every further exit.
FIRST_RESTART_DELAY = 0.5

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Child:
    """One process the supervisor runs: its command, and its restart and liveness records."""

    name: str  # a replica's name (``frontend-a0``), ``haproxy`` or ``prometheus``
    replica: Replica | None  # None for HAProxy and Prometheus
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None  # psutil's create time, recorded in the state file
    restarts: int = 0
    spawned_at: float = 0.0
    next_start: float = 0.0
    backoff: float = FIRST_RESTART_DELAY
    probe: PingProbe | None = None
    next_probe: float = 0.0
    answered_at: float | None = None
    last_probe_failed: bool = False
    killed_as_hung: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.replica.service if self.replica else self.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def describe_child(child: Child) -> dict[str, Any]:
    """A child as the state file records it, for `stockday status` and `stockday chaos`."""
    replica = child.replica
    return {
        "name": child.name,
        "service": child.service,
        "replica": replica.index if replica else 0,
        "zone": replica.zone.name if replica else None,
        "host": replica.host if replica else FRONT_HOST,
        "port": replica.port if replica else None,
        "pid": child.pid,
        "started": child.started,
        "restarts": child.restarts,
    }


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)


def die_with_parent(parent: int | None = None) -> None:
    """In the child, before exec: the kernel SIGKILLs it when the supervisor dies, even by
    SIGKILL. SIGKILL, not SIGTERM: a stopped (SIGSTOP) child would never act on SIGTERM.
    Given the ``parent`` that forked it: if that one died before the death signal was set, no
    signal will ever come, and the child exits at once instead of running as an orphan."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def become_subreaper() -> None:
    """Adopt whatever a child leaves behind, so that :func:`kill_strays` can find it."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def start(argv: list[str], env: dict[str, str], log: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, tied to this process's life, its output and
    errors into the pipe ``log`` (closed here, the child holds its own copy)."""
    try:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches `up` only; it stops children in order
            # Safe: `up` is single-threaded.
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
    finally:
        os.close(log)


def kill_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a child and whatever it started (its session's group, see :func:`start`)."""
    if process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def kill_strays(ours: Iterable[int | None], since: float, say: Callable[[str], None]) -> None:
    """Kill the processes adopted since ``since`` (a child died and left them) that are not
    among ``ours``."""
    known = set(ours)
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process().children():
            if process.pid not in known and process.create_time() >= since:
                say(f"killing pid {process.pid}, left behind by a dead child")
                with contextlib.suppress(psutil.Error):
                    process.kill()
                    process.wait(timeout=5)

"""Processes of a running stack, seen through psutil, and signals sent to them safely.

Failure tests stop and kill parts of the stack; these helpers find the parts and make sure no
process is left stopped when a test ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import httpx

from stockday.devstack import processes
from stockday.devstack.processes import alive, descendants, stopped


def children(pid: int) -> set[int]:
    """Direct children of ``pid`` that are alive."""
    return {p for p in processes.children(pid) if alive(p)}


def ping_pid(client: httpx.Client, port: int, host: str = "127.0.0.1") -> int | None:
    """The pid that answered /api/ping on ``host:port``, None if nothing answered."""
    try:
        response = client.get(f"http://{host}:{port}/api/ping")
    except httpx.HTTPError:
        return None
    return int(response.json()["pid"]) if response.status_code == 200 else None


def wait_until_gone(pids: set[int], timeout: float) -> set[int]:
    """Poll until none of ``pids`` is alive; the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class Signals:
    """Sends SIGSTOP, and on exit resumes every process it stopped that is still there, so a
    failing test never leaves a stopped process behind."""

    def __init__(self) -> None:
        self.stopped: set[int] = set()

    def stop(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self.stopped.add(pid)

    def resume(self, pid: int) -> None:
        resume(pid)
        self.stopped.discard(pid)

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in list(self.stopped):
            self.resume(pid)


def send(pid: int, number: int) -> None:
    """Send a signal to a process that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def resume(pid: int) -> None:
    send(pid, signal.SIGCONT)


def stopped_below(pid: int) -> set[int]:
    """Processes below ``pid`` that are stopped."""
    return {p for p in descendants(pid) if stopped(p)}

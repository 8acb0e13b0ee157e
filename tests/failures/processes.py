"""Processes of a running stack, seen through /proc, and signals sent to them safely.

Failure tests stop and kill parts of the stack; these helpers find the parts and make sure no
process is left stopped when a test ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def state(pid: int) -> str | None:
    """The process state letter (R, S, T for stopped, Z for zombie...), None if it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    """Running or stopped: neither gone nor a zombie waiting to be reaped."""
    return state(pid) not in (None, "Z", "X")


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def children(pid: int) -> set[int]:
    """Direct children of a single-threaded process that are alive."""
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    return {int(p) for p in listed if alive(int(p))}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from one walk of /proc (threads of others included)."""
    below: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X"):
            below.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in below.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def uvicorn_workers(master: int) -> set[int]:
    """A uvicorn master's spawned workers (not multiprocessing's resource tracker)."""
    return {p for p in children(master) if b"spawn_main" in command_line(p)}


def ping_pid(client: httpx.Client, port: int) -> int | None:
    """The pid that answered /api/ping on ``port``, None if nothing answered."""
    try:
        response = client.get(f"http://127.0.0.1:{port}/api/ping")
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
    """Processes below ``pid`` that are stopped (state T)."""
    return {p for p in descendants(pid) if state(p) == "T"}

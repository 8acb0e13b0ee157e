"""What a running stack records about itself (``<data-dir>/run/stack.json``), and what an
earlier run left behind.

Every process is recorded with its pid and its start time, so that a pid the kernel has since
given to another program is never taken for one of ours. `stockday status` and `stockday
chaos` read the record; `stockday up` reads it first to refuse a second stack on the same data
directory, or to stop the processes of a run whose supervisor died.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


def state_path(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def load_state(data_dir: Path) -> dict[str, Any]:
    path = state_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"no running stack recorded in {path}")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=2))
    temporary.replace(path)


def started_at(pid: int) -> float | None:
    """When ``pid`` started (psutil's create time), None if no such process is running."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def same_process(pid: int | None, started: float | None) -> bool:
    """Whether the process recorded as (``pid``, ``started``) is still running."""
    if pid is None or started is None:
        return False
    now = started_at(pid)
    return now is not None and abs(now - started) < 0.05


@dataclass(frozen=True)
class Leftovers:
    """What an earlier run of a data directory left: its supervisor if it still runs, and the
    processes it started that still run."""

    supervisor: int | None
    processes: list[tuple[str, int]]


def leftovers(data_dir: Path) -> Leftovers:
    try:
        state = load_state(data_dir)
    except (FileNotFoundError, ValueError):
        return Leftovers(None, [])
    supervisor = state.get("supervisor", {})
    alive_supervisor = (
        supervisor.get("pid")
        if same_process(supervisor.get("pid"), supervisor.get("started"))
        else None
    )
    processes = [
        (str(child["name"]), int(child["pid"]))
        for child in state.get("children", [])
        if same_process(child.get("pid"), child.get("started"))
    ]
    return Leftovers(alive_supervisor, processes)


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL each process and wait until it is gone; the pids still running after ``timeout``.

    A zombie is gone: dead, only waiting for its parent to reap it (psutil would wait for the
    reaping, for ever if that parent never does).
    """
    processes = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.kill()
            processes.append(process)
        except psutil.Error:
            continue
    deadline = time.monotonic() + timeout
    while True:
        # Reaps those that are our own children; the others are polled.
        _, alive = psutil.wait_procs(processes, timeout=min(0.1, timeout))
        processes = [p for p in alive if _running(p)]
        if not processes or time.monotonic() >= deadline:
            return [p.pid for p in processes]


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def port_taken(host: str, port: int) -> bool:
    """Whether ``host:port`` cannot be bound now (something listens there, or the address is
    not ours); a port held only by connections waiting out TIME_WAIT counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_holders(ports: list[tuple[str, int]]) -> dict[int, str]:
    """Which program listens on each of ``ports`` that is taken (best effort: "unknown" when
    the kernel does not say, e.g. a process of another user)."""
    wanted = {port for _, port in ports}
    holders: dict[int, str] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        connections = []
    for connection in connections:
        if connection.status != psutil.CONN_LISTEN or not connection.laddr:
            continue
        if connection.laddr.port in wanted:
            holders[connection.laddr.port] = _describe(connection.pid)
    return holders


def _describe(pid: int | None) -> str:
    if pid is None:
        return "unknown process"
    try:
        return f"pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:80]})"
    except psutil.Error:
        return f"pid {pid}"

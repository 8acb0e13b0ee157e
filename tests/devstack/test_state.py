"""What a running stack records about itself, and what an earlier run left behind: real
processes, checked by pid and start time."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from stockday.devstack.state import (
    Leftovers,
    kill_and_wait,
    leftovers,
    load_state,
    port_holders,
    same_process,
    started_at,
    state_path,
    write_state,
)
from tests.support.ports import HOST, free_port
from tests.support.waiting import wait_until


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """``sleep`` processes a test starts; every one still running is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def sleeper(started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "60"])
    started.append(process)
    return process


def record(process: subprocess.Popen[bytes] | int, name: str = "x") -> dict[str, Any]:
    """A child's entry in stack.json, as the supervisor writes it."""
    pid = process if isinstance(process, int) else process.pid
    return {"name": name, "pid": pid, "started": started_at(pid)}


def dead(started: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """The record of a process that has since exited (and was reaped)."""
    process = sleeper(started)
    entry = record(process, "dead")
    assert entry["started"] is not None
    process.kill()
    process.wait(timeout=10)
    return entry


def test_state_is_written_whole_and_read_back(tmp_path: Path) -> None:
    state = {"url": "http://127.0.0.1:1/", "children": [{"name": "haproxy", "pid": 1}]}
    write_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert state_path(tmp_path) == tmp_path / "run" / "stack.json"
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["stack.json"]  # no temporary left
    with pytest.raises(FileNotFoundError, match="no running stack"):
        load_state(tmp_path / "elsewhere")


def test_same_process_is_the_pid_and_its_start_time() -> None:
    me = os.getpid()
    started = started_at(me)
    assert started is not None
    assert same_process(me, started)
    # The pid given since to another program: same number, another start time.
    assert not same_process(me, started - 5.0)
    assert not same_process(me, started + 1.0)
    assert not same_process(None, started)
    assert not same_process(me, None)


def test_a_process_that_exited_is_not_the_same_process(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    entry = dead(sleepers)
    assert started_at(entry["pid"]) is None
    assert not same_process(entry["pid"], entry["started"])


def test_a_zombie_is_not_running(sleepers: list[subprocess.Popen[bytes]]) -> None:
    process = sleeper(sleepers)
    entry = record(process)
    process.kill()  # not reaped yet: a zombie until the fixture waits for it
    wait_until(
        lambda: psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE,
        10,
        lambda: f"pid {process.pid} did not become a zombie",
    )
    assert started_at(process.pid) is None
    assert not same_process(entry["pid"], entry["started"])


def test_leftovers_are_the_live_children_of_a_dead_supervisor(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    alive = sleeper(sleepers)
    recycled = sleeper(sleepers)
    recycled_started = started_at(recycled.pid)
    assert recycled_started is not None
    # Its pid recorded with another start time: a program that got the pid since.
    wrong_start = {**record(recycled, "recycled"), "started": recycled_started - 30}
    write_state(
        tmp_path,
        {
            "supervisor": dead(sleepers),
            "children": [record(alive, "frontend-a0"), dead(sleepers), wrong_start],
        },
    )
    assert leftovers(tmp_path) == Leftovers(None, [("frontend-a0", alive.pid)])


def test_a_live_supervisor_is_found(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    alive = sleeper(sleepers)
    write_state(
        tmp_path,
        {"supervisor": record(os.getpid()), "children": [record(alive, "haproxy")]},
    )
    assert leftovers(tmp_path) == Leftovers(os.getpid(), [("haproxy", alive.pid)])


def test_no_record_or_a_broken_one_leaves_nothing(tmp_path: Path) -> None:
    assert leftovers(tmp_path) == Leftovers(None, [])
    state_path(tmp_path).parent.mkdir(parents=True)
    state_path(tmp_path).write_text("{not json")
    assert leftovers(tmp_path) == Leftovers(None, [])


def test_kill_and_wait_kills_and_reaps(sleepers: list[subprocess.Popen[bytes]]) -> None:
    first, second = sleeper(sleepers), sleeper(sleepers)
    gone = dead(sleepers)["pid"]
    assert kill_and_wait([first.pid, second.pid, gone], timeout=10) == []
    # Gone the moment it returns: waited for (reaped, being our children), not merely signalled.
    for process in (first, second):
        assert not psutil.pid_exists(process.pid) or started_at(process.pid) is None


def test_kill_and_wait_takes_a_zombie_for_gone(sleepers: list[subprocess.Popen[bytes]]) -> None:
    """A killed process whose parent never reaps it (here a shell that became ``sleep``) stays
    a zombie: dead, and not worth waiting for."""
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & exec sleep 61"])
    sleepers.append(parent)
    children: list[psutil.Process] = []

    def has_child() -> bool:
        children[:] = psutil.Process(parent.pid).children()
        return bool(children) and "sleep 61" in " ".join(psutil.Process(parent.pid).cmdline())

    wait_until(has_child, 10, lambda: "the shell started nothing")
    (child,) = children
    began = time.monotonic()
    assert kill_and_wait([child.pid], timeout=10) == []
    assert time.monotonic() - began < 5
    assert child.status() == psutil.STATUS_ZOMBIE  # its parent has not reaped it


def test_port_holders_names_the_listening_process() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        free = free_port()
        holders = port_holders([(HOST, port), (HOST, free)])
    assert set(holders) == {port}
    assert holders[port].startswith(f"pid {os.getpid()} (")
    assert "python" in holders[port] or "pytest" in holders[port]

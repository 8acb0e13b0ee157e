"""The local stack's log files: each child's output copied whole lines at a time into a file
that rotates by size, keeping the configured number of old files, through restarts."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockday.devstack import children
from stockday.devstack.children import Child
from stockday.devstack.logfiles import LogFiles
from stockday.devstack.supervisor import Stack
from stockday.devstack.topology import Replica, Topology
from stockday.runtime.settings import Settings
from tests.support.ports import free_port
from tests.support.stack import free_port_base
from tests.support.waiting import wait_until

MAX_BYTES = 4096
LINE = "line {:05d} " + "x" * 88  # 100 bytes with its line end
PRINT_LINES = f"import sys\nfor n in range(int(sys.argv[1])): print({LINE!r}.format(n))\n"


def run_into(logs: LogFiles, name: str, program: str, *args: str) -> None:
    """Run ``program`` with its output in ``name``'s log, copying until it has exited."""
    write = logs.pipe_for(name)
    try:
        child = subprocess.Popen([sys.executable, "-c", program, *args], stdout=write)
    finally:
        os.close(write)
    assert child.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while logs.pipes and time.monotonic() < deadline:
        ready, _, _ = select.select(logs.readable(), [], [], 0.5)
        logs.read(ready)
    assert not logs.pipes


def numbers(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    assert all(line == LINE.format(int(line.split()[1])) for line in lines), "a split line"
    return [int(line.split()[1]) for line in lines]


def test_a_log_rotates_by_size_between_whole_lines_and_keeps_its_backups(tmp_path: Path) -> None:
    logs = LogFiles(tmp_path, max_bytes=MAX_BYTES, backups=2)
    try:
        run_into(logs, "frontend-a0", PRINT_LINES, "300")  # 30 kB: several rotations
    finally:
        logs.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["frontend-a0.log", "frontend-a0.log.1", "frontend-a0.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= MAX_BYTES, path.name
    kept = [
        *numbers(tmp_path / "frontend-a0.log.2"),
        *numbers(tmp_path / "frontend-a0.log.1"),
        *numbers(tmp_path / "frontend-a0.log"),
    ]
    # The newest lines, in order, none lost between the files; the oldest rotated away.
    assert kept == list(range(300 - len(kept), 300))
    assert len(kept) < 300


def test_a_restarted_child_appends_and_an_unfinished_last_line_is_kept(tmp_path: Path) -> None:
    logs = LogFiles(tmp_path, max_bytes=MAX_BYTES, backups=1)
    try:
        run_into(logs, "queue-worker-a0", "print('first run')")
        run_into(logs, "queue-worker-a0", "import sys; sys.stdout.write('dying words')")
        run_into(logs, "queue-worker-a0", "print('third run')")
    finally:
        logs.close()
    text = (tmp_path / "queue-worker-a0.log").read_text()
    assert text == "first run\ndying words\nthird run\n"


@pytest.fixture
def no_subreaper(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack runs in this process: pytest must not adopt every orphan of the session.
    prctl = children._prctl
    monkeypatch.setattr(
        children,
        "_prctl",
        lambda option, value: (
            None if option == children.PR_SET_CHILD_SUBREAPER else prctl(option, value)
        ),
    )


@pytest.fixture
def stack(tmp_path: Path, no_subreaper: None) -> Iterator[Stack]:
    settings = Settings(log_max_bytes=MAX_BYTES, log_backup_count=1)
    running = Stack(
        data_dir=tmp_path, topology=Topology(free_port_base(1), 1), settings=settings, say=print
    )
    yield running
    running.stop()


def test_the_supervisor_writes_each_childs_log_rotated_by_the_settings(
    stack: Stack, tmp_path: Path
) -> None:
    zone = stack.topology.zone_list[0]
    # Writes 50 kB, then waits to be stopped, as a replica would.
    program = PRINT_LINES + "import time; time.sleep(600)\n"
    argv = [sys.executable, "-c", program, "500"]
    stack.children = [Child("logo-resizer-a0", Replica("logo-resizer", 0, zone, free_port()), argv)]
    stack.start()
    log = stack.log_dir / "logo-resizer-a0.log"

    def written() -> bool:
        stack.pause(0.1)
        return log.exists() and bool(numbers(log)) and numbers(log)[-1] == 499

    wait_until(written, 30, lambda: f"log files: {sorted(stack.log_dir.iterdir())}")
    stack.stop()
    assert sorted(p.name for p in stack.log_dir.iterdir()) == [
        "logo-resizer-a0.log",
        "logo-resizer-a0.log.1",
    ]
    assert all(p.stat().st_size <= MAX_BYTES for p in stack.log_dir.iterdir())

"""`stockday up` refuses to start where it would fight something else, as a real process:
a port of the stack taken by another program, or a stack already running from the data
directory. It says what is in the way and starts nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockday.devstack.state import started_at, write_state
from stockday.devstack.topology import Topology
from tests.support.ports import port_is_free
from tests.support.stack import free_port_base

REFUSED = 2


def run_up(port_base: int, data_dir: Path, zones: int = 1) -> subprocess.CompletedProcess[str]:
    """`stockday up` as a user runs it; it is expected to exit by itself at once."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "stockday", "up"),
            *("--port-base", str(port_base)),
            *("--data-dir", str(data_dir)),
            *("--zones", str(zones)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        # rich wraps at 80 columns when not on a terminal: keep each message on one line.
        env={**os.environ, "COLUMNS": "300", "STOCKDAY_DATA_DIR": str(data_dir)},
    )


def assert_nothing_started(plan: Topology, data_dir: Path, *, but: int | None = None) -> None:
    """No process, configuration or log of a stack: every port of it is still free."""
    assert not (data_dir / "logs").exists()
    assert not (data_dir / "run" / "haproxy.cfg").exists()
    for host, port in plan.ports():
        if port != but:
            assert port_is_free(port), f"{host}:{port} is taken"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


@pytest.mark.parametrize("zones", [1, 2])
def test_a_taken_port_is_refused_naming_its_holder(
    zones: int, tmp_path: Path, listener: socket.socket
) -> None:
    port_base = free_port_base()
    plan = Topology(port_base, zones=zones)
    # The second stock-symbol replica's port: in zone b with two zones.
    taken = plan.replicas_of("stock-symbol")[1]
    listener.bind((taken.host, taken.port))
    listener.listen()

    result = run_up(port_base, tmp_path / "data", zones)

    output = result.stdout + result.stderr
    assert result.returncode == REFUSED, output
    assert f"{taken.host}:{taken.port} is taken by pid {os.getpid()} (" in output
    assert "choose another --port-base" in output
    assert "starting" not in output
    assert_nothing_started(plan, tmp_path / "data", but=taken.port)


def test_a_data_directory_with_a_live_supervisor_is_refused(tmp_path: Path) -> None:
    """This test's own process plays the supervisor of a stack running from ``data``."""
    data_dir = tmp_path / "data"
    me = os.getpid()
    write_state(data_dir, {"supervisor": {"pid": me, "started": started_at(me)}, "children": []})
    port_base = free_port_base()

    result = run_up(port_base, data_dir)

    output = result.stdout + result.stderr
    assert result.returncode == REFUSED, output
    assert "already running" in output
    assert f"pid {me})" in output
    assert_nothing_started(Topology(port_base), data_dir)
    assert (data_dir / "run" / "stack.json").exists()  # the running stack's record is kept


def test_a_recycled_supervisor_pid_is_not_a_running_stack(tmp_path: Path) -> None:
    """The record names this process's pid with another start time: a program that has the
    pid since. It is not taken for the supervisor (and so neither refused nor signalled):
    ``up`` goes on as far as the next check, a port that is taken."""
    data_dir = tmp_path / "data"
    me = os.getpid()
    started = started_at(me)
    assert started is not None
    write_state(data_dir, {"supervisor": {"pid": me, "started": started - 60}, "children": []})
    port_base = free_port_base()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port_base))  # the site's port
        listener.listen()
        result = run_up(port_base, data_dir)
    output = result.stdout + result.stderr
    assert result.returncode == REFUSED, output
    assert "already running" not in output
    assert f"127.0.0.1:{port_base} is taken" in output

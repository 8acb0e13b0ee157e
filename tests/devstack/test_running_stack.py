"""A running stack over two zones, seen and broken from outside with the CLI: `up` first stops
what a dead earlier run left behind, `stockday status` shows every replica by zone and in
HAProxy's rotation, and `stockday chaos kill` kills exactly the process it names, which the
supervisor restarts. One stack for all of it: starting one costs seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from stockday.devstack.processes import alive
from stockday.devstack.state import same_process, started_at, write_state
from stockday.devstack.status import rotation
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

HTTP_SERVICES = ("frontend", "stock-symbol", "stock-price")
SERVICES = (*HTTP_SERVICES, "logo-resizer", "queue-worker")


@dataclass
class Planted:
    stack: RunningStack
    left: subprocess.Popen[bytes]  # recorded as a child of a dead supervisor: `up` stops it
    recycled: subprocess.Popen[bytes]  # its pid recorded with another start time: not ours
    rotation_when_ready: dict[str, str]  # HAProxy's servers the moment `up` said it was ready


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)


def entry(name: str, pid: int, started: float | None) -> dict[str, object]:
    return {"name": name, "pid": pid, "started": started}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    data_dir = tmp_path_factory.mktemp("zoned") / "data"
    supervisor = sleeper()
    supervisor_started = started_at(supervisor.pid)
    supervisor.kill()
    supervisor.wait(timeout=10)
    left, recycled = sleeper(), sleeper()
    recycled_started = started_at(recycled.pid)
    assert recycled_started is not None
    write_state(
        data_dir,
        {
            "supervisor": entry("up", supervisor.pid, supervisor_started),
            "children": [
                entry("stock-price-b1", left.pid, started_at(left.pid)),
                entry("haproxy", recycled.pid, recycled_started - 60),
            ],
        },
    )
    stack = RunningStack(data_dir, zones=2)
    try:
        stack.start()
        with httpx.Client(timeout=5) as client:
            in_rotation = rotation(f"http://127.0.0.1:{stack.topology.stats_port}/", client)
        yield Planted(stack, left, recycled, in_rotation)
    finally:
        if stack.process is not None and stack.process.poll() is None:
            assert stack.stop() == 0, stack.output()
        for process in (left, recycled):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockday", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def status_rows(shown: str) -> list[list[str]]:
    """The cells of each row of `stockday status`, in the order shown."""
    rows = []
    for line in shown.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) >= 8 and cells[1]:
            rows.append(cells)
    return rows


def test_up_stops_what_a_dead_run_left_running(planted: Planted) -> None:
    stack, left = planted.stack, planted.left
    output = stack.output()
    assert "an earlier run left processes behind" in output, output
    assert f"stopping stock-price-b1 (pid {left.pid})" in output, output
    assert left.poll() == -9  # killed (SIGKILL) by `up` before it started anything
    # A pid that another program has since, by its start time: neither named nor signalled.
    assert planted.recycled.poll() is None
    assert f"pid {planted.recycled.pid}" not in output
    # The new run is recorded in place of the dead one.
    supervisor = stack.state()["supervisor"]
    assert supervisor["pid"] == stack.pid
    assert same_process(supervisor["pid"], supervisor["started"])


def test_ready_means_every_http_replica_is_in_rotation(planted: Planted) -> None:
    """`up` says it is ready only once HAProxy has every HTTP replica in rotation: a replica
    that answers its readiness is not yet one that HAProxy sends requests to."""
    stack = planted.stack
    expected = {r.name: "UP" for s in HTTP_SERVICES for r in stack.replicas_of(s)}
    assert planted.rotation_when_ready == expected


def test_status_shows_every_replica_with_its_zone_and_in_rotation(planted: Planted) -> None:
    stack = planted.stack
    data_dir = str(stack.data_dir)
    shown = ""

    def every_http_replica_up() -> bool:
        nonlocal shown
        result = cli("status", "--once", "--data-dir", data_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        shown = result.stdout
        states = {cells[1]: cells[5] for cells in status_rows(shown)}
        return all(states.get(r.name) == "UP" for s in HTTP_SERVICES for r in stack.replicas_of(s))

    # HAProxy puts a replica in rotation after two good checks, half a second apart.
    wait_until(every_http_replica_up, 15, lambda: shown)
    rows = {cells[1]: cells for cells in status_rows(shown)}
    # zone, replica, pid, address, health, in rotation, restarts, requests...
    for service in SERVICES:
        replicas = stack.replicas_of(service)
        assert {r.zone.name for r in replicas} == {"a", "b"}
        for replica in replicas:
            cells = rows[replica.name]
            assert cells[0] == replica.zone.name, shown
            assert cells[2] == str(stack.pid_of(replica.name)), shown
            assert cells[3] == f"127.0.{replica.zone.index + 1}.1:{replica.port}", shown
            assert cells[4] == "ready", shown
            assert cells[5] == ("UP" if replica.is_http else "-"), shown
    assert rows["haproxy"][0] == "-"
    # Shown by zone: HAProxy (in no zone) first, then zone a, then zone b.
    zones = [cells[0] for cells in status_rows(shown)]
    assert zones == sorted(zones, key=lambda zone: (zone != "-", zone))
    assert set(rows) == {"haproxy", *(r.name for s in SERVICES for r in stack.replicas_of(s))}


def test_chaos_kill_kills_exactly_the_named_replica_and_it_comes_back(planted: Planted) -> None:
    stack = planted.stack
    data_dir = str(stack.data_dir)
    victim = stack.replicas_of("frontend")[0]
    assert victim.name == "frontend-a0"
    before = stack.stack_pids()
    started = {c["name"]: c["started"] for c in stack.state()["children"]}

    killed = cli("chaos", "kill", "frontend-a0", "--data-dir", data_dir)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert f"kill: frontend-a0 (pid {before['frontend-a0']})" in killed.stdout
    wait_until(lambda: not alive(before["frontend-a0"]), 10, lambda: "the victim still runs")
    # Nothing else was touched.
    for name, pid in before.items():
        if name != "frontend-a0":
            assert same_process(pid, started[name]), name

    answers: list[int] = []
    replacement: dict[str, int] = {}

    def restarted() -> bool:
        with httpx.Client(timeout=2) as client:
            answers.append(client.get(stack.frontend + "/api/ready").status_code)
            now = stack.pid_of("frontend-a0")
            if now == before["frontend-a0"]:
                return False
            try:
                ping = client.get(f"{stack.replica_url(victim)}/api/ping")
            except httpx.HTTPError:
                return False
        replacement["pid"] = now
        return ping.status_code == 200 and ping.json()["pid"] == now

    wait_until(restarted, 30, lambda: f"frontend-a0 not back: {stack.state()['children']}")
    # The site answered all along, from the frontend replica in zone b.
    assert answers and set(answers) == {200}, answers
    after = stack.stack_pids()
    assert after["frontend-a0"] == replacement["pid"] != before["frontend-a0"]
    assert {name for name in before if after[name] != before[name]} == {"frontend-a0"}
    restarts = {c["name"]: c["restarts"] for c in stack.state()["children"]}
    assert restarts["frontend-a0"] == 1


def test_chaos_refuses_an_unknown_target_naming_the_known_ones(planted: Planted) -> None:
    before = planted.stack.stack_pids()
    refused = cli("chaos", "kill", "frontend-c0", "--data-dir", str(planted.stack.data_dir))
    assert refused.returncode == 2
    assert "no process 'frontend-c0'" in refused.stdout
    assert "frontend-a0" in refused.stdout and "haproxy" in refused.stdout
    assert planted.stack.stack_pids() == before

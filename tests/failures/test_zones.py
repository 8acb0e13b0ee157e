"""A stack over two zones loses one of them, under load: its processes, or its network.

Each test runs a stack with ``--zones 2`` (zone a on 127.0.1.1, zone b on 127.0.2.1, one replica
of each service in each) under steady page views and stock creations, and breaks zone a with
``stockday chaos``, run as an operator runs it:
- ``kill-zone a``: every process of the zone is killed; the other zone serves meanwhile, and
  the supervisor brings the zone back, in HAProxy's rotation, within 10 s;
- ``partition a --seconds 20``: the zone's network is cut (packets dropped, so connections
  hang); HAProxy takes its servers out of rotation, the other zone serves, and after the heal
  the servers are back in rotation within 10 s, the very same processes: the supervisor probes
  them from inside their zone and has no reason to restart them;
- a partition still in place when the stack stops is healed by the stack.
Every process and every firewall rule of the stack is removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stockday.devstack import partition
from stockday.devstack.processes import alive
from stockday.devstack.state import kill_and_wait
from stockday.devstack.status import rotation
from stockday.devstack.topology import Replica
from tests.failures.processes import wait_until_gone
from tests.support.load import Load, Traffic, lost_writes
from tests.support.programs import find_program, require_program, require_root
from tests.support.stack import RunningStack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

ZONE = "a"
SERVED = 0.999
BACK_WITHIN = 10.0  # seconds from the kill, or from the heal, to the zone serving again
PARTITION_SECONDS = 20.0
OUT_OF_ROTATION_WITHIN = 5.0  # HAProxy's checks: at most 1.55 s, with room for a busy machine
WARM_UP_PAGE_VIEWS = 50


class ZonedStack(RunningStack):
    """A stack over two zones, and what the tests ask of it."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, zones=2)
        self.http = httpx.Client(timeout=2.0)

    def chaos(self, *arguments: str) -> subprocess.Popen[str]:
        """``stockday chaos ...`` on this stack, started; its output is in ``chaos.out``."""
        with open(self.data_dir.parent / "chaos.out", "a") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "stockday", "chaos", *arguments],
                env={**os.environ, **self.env, "COLUMNS": "200"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )

    def run_chaos(self, *arguments: str) -> None:
        command = self.chaos(*arguments, "--data-dir", str(self.data_dir))
        assert command.wait(timeout=60) == 0, self.chaos_output()

    def chaos_output(self) -> str:
        path = self.data_dir.parent / "chaos.out"
        return path.read_text() if path.exists() else ""

    def zone_replicas(self, zone: str, http: bool | None = None) -> list[Replica]:
        return [
            replica
            for replica in self.topology.all_replicas
            if replica.zone.name == zone and (http is None or replica.is_http == http)
        ]

    def rotation(self) -> dict[str, str]:
        """HAProxy's word for each server (UP, DOWN, "DOWN 1/2"...), from its CSV statistics."""
        return rotation(f"http://127.0.0.1:{self.topology.stats_port}/", self.http)

    def all_in_rotation(self, zone: str, status: str) -> bool:
        states = self.rotation()
        return all(states.get(r.name) == status for r in self.zone_replicas(zone, http=True))

    def ping_pid(self, replica: Replica) -> int | None:
        try:
            answer = self.http.get(f"{self.replica_url(replica)}/api/ping")
        except httpx.HTTPError:
            return None
        return int(answer.json()["pid"]) if answer.status_code == 200 else None

    def ready(self, replica: Replica) -> bool:
        try:
            return self.http.get(f"{self.replica_url(replica)}/api/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def front_reaches(self, replica: Replica, pid: int) -> bool:
        """Whether one request through the service's front port was answered by ``pid``
        (HAProxy takes turns over the replicas in rotation: poll it)."""
        front = self.topology.front_url(replica.service)
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            return bool(self.http.get(f"{front}/api/ping").json()["pid"] == pid)
        return False

    def wait_until_serving(self, replicas: list[Replica], timeout: float) -> None:
        """Until requests through the front ports have reached each of ``replicas``."""
        waiting = {r.name: r for r in replicas}

        def served() -> bool:
            for name, replica in list(waiting.items()):
                if self.front_reaches(replica, self.pid_of(name)):
                    del waiting[name]
            return not waiting

        wait_until(
            served,
            timeout,
            lambda: f"no request reached {sorted(waiting)}: {self.rotation()}",
            process=self.process,
        )

    def rules(self) -> list[str]:
        """The stack's partition rules as ``iptables -S INPUT`` prints them."""
        listed = subprocess.run(
            [require_program("iptables"), "-w", "-S", "INPUT"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        tag = f"stockday:{self.port_base}:"
        return [line for line in listed.stdout.splitlines() if tag in line]


def firewall_usable() -> bool:
    return find_program("iptables") is not None and os.geteuid() == 0


@pytest.fixture
def firewall() -> None:
    """For the tests that partition: iptables and root (under CI a missing one fails them)."""
    require_program("iptables")
    require_root("zone partitions change the firewall with iptables")


@pytest.fixture
def zoned(tmp_path: Path) -> Iterator[ZonedStack]:
    """A running stack over two zones; stopped afterwards, with every process and every
    partition rule of it gone, whatever the test did."""
    stack = ZonedStack(tmp_path / "data")
    pids: set[int] = set()
    try:
        stack.start()
        yield stack
    finally:
        try:
            with contextlib.suppress(FileNotFoundError, ValueError):
                pids = set(stack.stack_pids().values())
            if stack.process is not None:
                stack.stop()
        finally:
            left = wait_until_gone(pids, timeout=10.0)
            kill_and_wait(sorted(left))
            healed = partition.heal(stack.port_base) if firewall_usable() else 0
            stack.http.close()
    assert not left, f"processes of the stack left running: {left}"
    assert not healed, f"{healed} partition rules were left after the stack stopped"
    assert not firewall_usable() or not stack.rules()


def warm_up(stack: ZonedStack, load: Load) -> None:
    """Until the load has been served for a while: the failure hits a stack in use."""
    wait_until(
        lambda: (
            sum(o.ok for o in load.traffic.page_views) >= WARM_UP_PAGE_VIEWS
            and load.traffic.acknowledged
        ),
        timeout=30.0,
        explain=load.traffic.summary,
        process=stack.process,
    )


def timeline(traffic: Traffic, events: dict[str, float]) -> str:
    """The failed page views and the test's events, in seconds from the first page view."""
    start = traffic.page_views[0].at if traffic.page_views else 0.0
    lines = [(at, name) for name, at in events.items()]
    lines += [(o.at, f"page view failed: {o.why}") for o in traffic.page_views if not o.ok][:50]
    return "\n".join(f"{at - start:8.3f}s {what}" for at, what in sorted(lines))


def fmt(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f}s" for name, value in sorted(seconds.items()))


def check_traffic(stack: ZonedStack, traffic: Traffic, events: dict[str, float]) -> None:
    print(traffic.summary())
    explain = f"{traffic.summary()}\n{timeline(traffic, events)}"
    assert len(traffic.page_views) >= 500, explain
    assert traffic.served() >= SERVED, explain
    assert traffic.acknowledged, explain
    assert lost_writes(stack, traffic.acknowledged) == []


def test_a_killed_zone_is_back_in_rotation_within_ten_seconds_and_nothing_is_lost(
    zoned: ZonedStack,
) -> None:
    zone_a = zoned.zone_replicas(ZONE)
    before = {replica.name: zoned.pid_of(replica.name) for replica in zone_a}
    with Load(zoned, prefix="KZ") as load:
        warm_up(zoned, load)
        zoned.run_chaos("kill-zone", ZONE)
        killed_at = time.monotonic()
        assert not wait_until_gone(set(before.values()), timeout=5.0)

        new_pids: dict[str, int] = {}
        answering: dict[str, float] = {}  # when each replica's new process first answered
        serving: dict[str, float] = {}  # when a request through HAProxy first reached it

        def zone_back() -> bool:
            states = zoned.rotation()
            for replica in zone_a:
                if replica.name in serving:
                    continue
                pid = zoned.ping_pid(replica)
                if pid is None or pid == before[replica.name]:
                    continue
                new_pids[replica.name] = pid
                answering.setdefault(replica.name, time.monotonic() - killed_at)
                if not replica.is_http or (
                    states.get(replica.name) == "UP"
                    and zoned.ready(replica)
                    and zoned.front_reaches(replica, pid)
                ):
                    serving[replica.name] = time.monotonic() - killed_at
            return len(serving) == len(zone_a)

        wait_until(
            zone_back,
            timeout=BACK_WITHIN,
            explain=lambda: (
                f"zone {ZONE} not back: {zoned.rotation()}, new pids {new_pids}, answering "
                f"after {answering}, serving after {serving}"
            ),
            process=zoned.process,
            interval=0.1,
        )
        back_at = time.monotonic()
        # The load goes on for a while with both zones serving again.
        wait_until(lambda: len(load.traffic.window(back_at)) >= 100, timeout=30.0)
    traffic = load.traffic
    print(
        f"\nzone {ZONE} killed: back in rotation, ready and serving after "
        f"{back_at - killed_at:.1f}s; served {100 * traffic.served():.3f} % overall, "
        f"{100 * traffic.served(killed_at, back_at):.3f} % while it was away; new processes "
        f"answering after {fmt(answering)}, serving after {fmt(serving)}"
    )
    assert all(new_pids[name] != pid for name, pid in before.items())
    check_traffic(zoned, traffic, {"killed": killed_at, "back": back_at})


@pytest.mark.usefixtures("firewall")
def test_a_partitioned_zone_leaves_rotation_and_returns_after_the_heal_unrestarted(
    zoned: ZonedStack,
) -> None:
    zone_http = zoned.zone_replicas(ZONE, http=True)
    pids_before = zoned.stack_pids()
    with Load(zoned, prefix="PZ") as load:
        warm_up(zoned, load)
        command = zoned.chaos(
            "partition",
            ZONE,
            "--seconds",
            str(PARTITION_SECONDS),
            "--data-dir",
            str(zoned.data_dir),
        )
        try:
            wait_until(
                lambda: partition.partitioned_zones(zoned.port_base) == {ZONE},
                timeout=30.0,
                explain=zoned.chaos_output,
                process=command,
            )
            cut_at = time.monotonic()
            wait_until(
                lambda: zoned.all_in_rotation(ZONE, "DOWN"),
                timeout=OUT_OF_ROTATION_WITHIN,
                explain=lambda: f"zone {ZONE} still in rotation: {zoned.rotation()}",
            )
            down_after = time.monotonic() - cut_at

            # Out of rotation for as long as it is cut off, and the page views go on.
            def healed() -> bool:
                assert zoned.all_in_rotation(ZONE, "DOWN") or not zoned.rules(), zoned.rotation()
                return not zoned.rules()

            wait_until(
                healed,
                timeout=PARTITION_SECONDS + 10.0,
                explain=zoned.chaos_output,
                interval=0.2,
            )
            healed_at = time.monotonic()
            assert command.wait(timeout=10) == 0, zoned.chaos_output()
        finally:
            if command.poll() is None:  # it heals on SIGTERM
                command.terminate()
                command.wait(timeout=30)
        wait_until(
            lambda: zoned.all_in_rotation(ZONE, "UP"),
            timeout=BACK_WITHIN,
            explain=lambda: f"zone {ZONE} not back in rotation: {zoned.rotation()}",
        )
        up_at = time.monotonic()
        zoned.wait_until_serving(zone_http, timeout=10.0)
        wait_until(lambda: len(load.traffic.window(up_at)) >= 100, timeout=30.0)
    traffic = load.traffic
    during = traffic.window(cut_at, healed_at)
    print(
        f"\nzone {ZONE} partitioned for {healed_at - cut_at:.1f}s: out of rotation after "
        f"{down_after:.2f}s, back in rotation {up_at - healed_at:.2f}s after the heal; "
        f"{len(during)} page views meanwhile, {100 * traffic.served(cut_at, healed_at):.3f} % "
        f"served; {100 * traffic.served():.3f} % overall"
    )
    events = {"cut": cut_at, "out of rotation": cut_at + down_after, "healed": healed_at}
    events["back in rotation"] = up_at
    assert during, traffic.summary()
    check_traffic(zoned, traffic, events)
    served_while_cut = traffic.served(cut_at, healed_at)
    assert served_while_cut >= SERVED, f"{traffic.summary()}\n{timeline(traffic, events)}"
    # The partition did not look like a hang to the supervisor: no process was replaced.
    assert zoned.stack_pids() == pids_before
    assert all(child["restarts"] == 0 for child in zoned.state()["children"])
    assert "has not answered /api/ping" not in zoned.output()
    assert all(alive(pid) for pid in pids_before.values())
    assert zoned.rules() == []


@pytest.mark.usefixtures("firewall")
def test_stopping_the_stack_heals_its_partition(zoned: ZonedStack) -> None:
    pids = set(zoned.stack_pids().values())
    zoned.run_chaos("partition", ZONE, "--data-dir", str(zoned.data_dir))
    assert partition.partitioned_zones(zoned.port_base) == {ZONE}
    assert len(zoned.rules()) == 2
    wait_until(
        lambda: zoned.all_in_rotation(ZONE, "DOWN"),
        timeout=OUT_OF_ROTATION_WITHIN,
        explain=lambda: f"zone {ZONE} still in rotation: {zoned.rotation()}",
    )

    assert zoned.stop() == 0, zoned.output()

    assert zoned.rules() == []
    assert "removed 2 partition rules" in zoned.output()
    assert not wait_until_gone(pids, timeout=10.0)

"""Partitions with the real firewall: iptables rules that cut a zone's loopback network off.

Needs root and Debian's iptables (under CI both are there: a missing one fails the test). Each
test partitions under port bases no running stack uses, and the fixture removes every rule of
them whatever happens, checking ``iptables -S INPUT`` afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stockday.devstack import partition
from stockday.devstack.partition import PartitionUnavailable
from stockday.devstack.topology import Topology
from tests.support.programs import require_program, require_root
from tests.support.stack import free_port_base

# Addresses of zone a (127.0.1.0/24) and zone b (127.0.2.0/24) that no stack's replica uses
# (replicas listen on .1, the supervisor probes from .254).
SERVER_IN_A = "127.0.1.77"
NEIGHBOUR_IN_A = "127.0.1.78"
SERVER_IN_B = "127.0.2.77"
OUTSIDE = "127.0.0.1"
CONNECT_SECONDS = 1.0


@dataclass(frozen=True)
class Firewall:
    iptables: str
    port_base: int  # the stack whose zones the test partitions
    other_base: int  # another stack's, whose rules must be left alone

    def input_rules(self) -> list[str]:
        listed = subprocess.run(
            [self.iptables, "-w", "-S", "INPUT"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return listed.stdout.splitlines()

    def rules_of(self, port_base: int, zone: str | None = None) -> list[str]:
        tag = f"stockday:{port_base}:{zone or ''}"
        return [rule for rule in self.input_rules() if tag in rule]


@pytest.fixture
def firewall() -> Iterator[Firewall]:
    iptables = require_program("iptables")
    require_root("partition tests change the firewall with iptables")
    port_base = free_port_base()
    other_base = free_port_base()
    while other_base == port_base:
        other_base = free_port_base()
    found = Firewall(iptables, port_base, other_base)
    try:
        yield found
    finally:
        partition.heal(port_base)
        partition.heal(other_base)
        left = found.rules_of(port_base) + found.rules_of(other_base)
        assert not left, f"partition rules left behind: {left}"


def zones(port_base: int) -> Topology:
    return Topology(port_base=port_base, replicas=2, zones=2)


@pytest.fixture
def server_in_a() -> Iterator[tuple[str, int]]:
    """A listening TCP server in zone a: the kernel completes handshakes to it by itself."""
    with socket.create_server((SERVER_IN_A, 0)) as server:
        yield SERVER_IN_A, server.getsockname()[1]


def connect(address: tuple[str, int], source: str | None = None) -> str:
    """How a TCP connection to ``address`` ends: "connected", "refused" or "timed out"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(CONNECT_SECONDS)
        if source is not None:
            client.bind((source, 0))
        try:
            client.connect(address)
        except TimeoutError:
            return "timed out"
        except ConnectionRefusedError:
            return "refused"
    return "connected"


def test_a_partitioned_zone_is_unreachable_from_outside_but_not_from_inside(
    firewall: Firewall, server_in_a: tuple[str, int]
) -> None:
    zone_a = zones(firewall.port_base).zone("a")
    assert connect(server_in_a) == "connected"

    partition.partition(firewall.port_base, zone_a)

    # Dropped, not refused: the connection hangs, as into a zone that lost its network.
    assert connect(server_in_a) == "timed out"
    assert connect(server_in_a, source=SERVER_IN_B) == "timed out"  # from another zone
    assert connect(server_in_a, source=NEIGHBOUR_IN_A) == "connected"  # inside the zone
    assert connect(server_in_a, source=zone_a.probe_source) == "connected"  # the supervisor
    # And out of the zone: a server outside cannot be reached from it.
    with socket.create_server((OUTSIDE, 0)) as outside:
        assert connect(outside.getsockname(), source=NEIGHBOUR_IN_A) == "timed out"
        assert connect(outside.getsockname()) == "connected"

    assert partition.heal(firewall.port_base, "a") == 2
    assert connect(server_in_a) == "connected"


def test_partitioning_twice_adds_no_rule(firewall: Firewall) -> None:
    zone_a = zones(firewall.port_base).zone("a")
    partition.partition(firewall.port_base, zone_a)
    once = firewall.rules_of(firewall.port_base, "a")
    assert len(once) == 2, once

    partition.partition(firewall.port_base, zone_a)

    assert firewall.rules_of(firewall.port_base, "a") == once
    assert partition.partitioned_zones(firewall.port_base) == {"a"}


def test_heal_removes_the_rules_of_its_stack_and_zone_only(firewall: Firewall) -> None:
    ours, theirs = zones(firewall.port_base), zones(firewall.other_base)
    assert partition.partitioned_zones(firewall.port_base) == set()
    partition.partition(firewall.port_base, ours.zone("a"))
    partition.partition(firewall.port_base, ours.zone("b"))
    partition.partition(firewall.other_base, theirs.zone("a"))
    assert partition.partitioned_zones(firewall.port_base) == {"a", "b"}
    assert partition.partitioned_zones(firewall.other_base) == {"a"}
    other_rules = firewall.rules_of(firewall.other_base)
    assert len(other_rules) == 2

    assert partition.heal(firewall.port_base, "a") == 2

    assert partition.partitioned_zones(firewall.port_base) == {"b"}
    assert firewall.rules_of(firewall.port_base, "a") == []
    assert len(firewall.rules_of(firewall.port_base, "b")) == 2
    assert firewall.rules_of(firewall.other_base) == other_rules

    assert partition.heal(firewall.port_base) == 2  # every zone of the stack
    assert partition.heal(firewall.port_base) == 0
    assert partition.partitioned_zones(firewall.port_base) == set()
    assert firewall.rules_of(firewall.other_base) == other_rules
    assert partition.partitioned_zones(firewall.other_base) == {"a"}


def test_a_stack_of_one_zone_cannot_be_partitioned() -> None:
    single = Topology(port_base=free_port_base(), replicas=2, zones=1)
    with pytest.raises(ValueError, match="--zones 2"):
        partition.partition(single.port_base, single.zone("a"))


def test_without_root_a_partition_says_it_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    port_base = free_port_base()
    zone_a = zones(port_base).zone("a")

    with pytest.raises(PartitionUnavailable, match="root"):
        partition.partition(port_base, zone_a)
    with pytest.raises(PartitionUnavailable, match="root"):
        partition.heal(port_base)
    with pytest.raises(PartitionUnavailable, match="root"):
        partition.partitioned_zones(port_base)

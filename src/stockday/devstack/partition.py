"""Cutting a zone of the local stack off the network, and healing it, with iptables.

A partition drops every packet between the zone's loopback network and any address outside it,
in the INPUT chain (loopback traffic passes it on its way in). Dropped, not refused: a
connection into the zone hangs, as it does when an AWS zone loses its network, so the load
balancer's timeouts and health checks must do the work. Traffic inside the zone still flows,
so the supervisor's liveness probes, sent from the zone's own address, still reach its replicas
(a kubelet probes the pods of its own node).

Each rule carries a comment naming the stack and the zone (``stockday:<port base>:<zone>``), so
that healing finds exactly its own rules, even ones left by a chaos command that was killed.
Needs root and Debian's iptables package; says so plainly otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from stockday.devstack.topology import Zone


class PartitionUnavailable(RuntimeError):
    """iptables cannot be used here (not installed, or not root)."""


def _iptables() -> str:
    found = shutil.which("iptables") or next(
        (p for p in ("/usr/sbin/iptables", "/sbin/iptables") if os.path.exists(p)), None
    )
    if found is None:
        raise PartitionUnavailable(
            "partitions need iptables: apt-get install iptables (and root to run it)"
        )
    if os.geteuid() != 0:
        raise PartitionUnavailable("partitions change the firewall, which needs root")
    return found


def _tag(port_base: int, zone: str) -> str:
    return f"stockday:{port_base}:{zone}"


def _rules(zone: Zone, tag: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", tag, "-j", "DROP"]
    return [
        ["INPUT", "!", "-s", zone.network, "-d", zone.network, *comment],
        ["INPUT", "-s", zone.network, "!", "-d", zone.network, *comment],
    ]


def _run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    # -w: wait for the xtables lock rather than fail when another command holds it.
    return subprocess.run(
        [_iptables(), "-w", *arguments], capture_output=True, text=True, check=False, timeout=30
    )


def partition(port_base: int, zone: Zone) -> None:
    """Cut ``zone`` off; doing it twice changes nothing."""
    if zone.single:
        raise ValueError("a stack of one zone cannot be partitioned: start it with --zones 2")
    tag = _tag(port_base, zone.name)
    if tagged_rules(port_base, zone.name):
        return
    for rule in _rules(zone, tag):
        done = _run(["-I", *rule])
        if done.returncode != 0:
            heal(port_base, zone.name)
            raise PartitionUnavailable(f"iptables refused the rule: {done.stderr.strip()}")


def tagged_rules(port_base: int, zone: str | None = None) -> list[list[str]]:
    """The INPUT rules of this stack's partitions (of one zone, or of every zone), each as the
    arguments ``iptables -S`` prints for it: ``["-A", "INPUT", ...]``."""
    listed = _run(["-S", "INPUT"])
    if listed.returncode != 0:
        raise PartitionUnavailable(f"iptables cannot list rules: {listed.stderr.strip()}")
    found = []
    for line in listed.stdout.splitlines():
        arguments = shlex.split(line)  # iptables quotes a comment that needs it
        tag = _comment(arguments)
        owner = _zone_of(tag, port_base) if tag else None
        if owner is not None and zone in (None, owner):
            found.append(arguments)
    return found


def heal(port_base: int, zone: str | None = None) -> int:
    """Remove this stack's partition rules (of one zone, or all); how many were removed."""
    removed = 0
    for arguments in tagged_rules(port_base, zone):
        if arguments[:1] == ["-A"] and _run(["-D", *arguments[1:]]).returncode == 0:
            removed += 1
    return removed


def partitioned_zones(port_base: int) -> set[str]:
    """The zones of this stack cut off now."""
    return {
        zone
        for arguments in tagged_rules(port_base)
        if (tag := _comment(arguments)) and (zone := _zone_of(tag, port_base))
    }


def _comment(arguments: list[str]) -> str | None:
    if "--comment" not in arguments[:-1]:
        return None
    return arguments[arguments.index("--comment") + 1]


def _zone_of(tag: str, port_base: int) -> str | None:
    prefix = f"stockday:{port_base}:"
    return tag.removeprefix(prefix) if tag.startswith(prefix) else None

"""Free loopback ports, and waiting until a server listens or answers on one."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from stockday.devstack.state import port_taken
from tests.support.waiting import wait_until

HOST = "127.0.0.1"


def port_is_free(port: int) -> bool:
    return not port_taken(HOST, port)


def _candidates(step: int = 1, room: int = 0) -> Iterable[int]:
    # Below the kernel's ephemeral range: an outgoing connection could take any port in it.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(500):
        yield rng.randrange(10_000, min(low, 32_768) - room, step)


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range."""
    for port in _candidates():
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port on {HOST}")


def free_ports(offsets: Iterable[int]) -> int:
    """A base N, a multiple of 50, such that N + each of ``offsets`` is a free port."""
    wanted = list(offsets)
    for base in _candidates(step=50, room=100):
        if all(port_is_free(base + offset) for offset in wanted):
            return base
    raise RuntimeError(f"no free port range on {HOST}")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll until something listens on ``port``; fail early if ``process`` exits."""

    def listening() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            return probe.connect_ex((HOST, port)) == 0

    wait_until(listening, timeout, lambda: f"nothing listening on {HOST}:{port}", process=process)


def wait_for_http(url: str, timeout: float, *, alive: Callable[[], bool] | None = None) -> None:
    """Poll ``url`` until it answers 200, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RuntimeError(f"the server behind {url} exited")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")

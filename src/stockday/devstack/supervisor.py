"""`stockday up`: every service as real processes on the loopback interface, supervised.

HTTP services run under uvicorn's own multi-process supervisor (``--workers``), which restarts
dead workers and kills hung ones; all replicas of a service share its port. Consumers are
separate processes. This module restarts any top-level child that exits (a dead uvicorn master
or a consumer) with a capped backoff, and kills a consumer that is alive but no longer answers
its liveness probe (stopped, or its event loop blocked) so that the restart replaces it:
uvicorn has no supervisor for those.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stockday.devstack.haproxy import haproxy_binary, haproxy_config
from stockday.runtime import catalog
from stockday.runtime.catalog import service_command
from stockday.runtime.settings import Settings

GATEWAY = "gateway"
# With HAProxy in front, the frontend's own uvicorn listens here (the site stays on N).
FRONTEND_BEHIND_GATEWAY_OFFSET = 3
GATEWAY_DRAIN_SECONDS = 10.0
# Where each service sits above the port base, from the catalog.
PORT_OFFSETS = {s.name: s.port_offset for s in catalog.HTTP_SERVICES}
CONSUMER_PORT_OFFSETS = {s.name: s.port_offset for s in catalog.CONSUMERS}
MAX_RESTART_DELAY = 30.0
STOP_GRACE_SECONDS = 15.0

# One probe per consumer at most this often, each given this long to answer. A consumer silent
# for the hang_seconds setting is hung (stopped, or its event loop blocked): its default is the
# limit uvicorn applies to its own workers (--timeout-worker-healthcheck 10).
PING_INTERVAL_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 1.0
# A starting consumer imports its modules, opens its queue and binds its port: until it first
# answers, the hang limit counts from this long after its start, not from its start.
START_GRACE_SECONDS = 10.0


def health_ports(service: str, port_base: int, replicas: int) -> list[int]:
    """Ports where a service answers /api/ping: one per consumer replica, one per HTTP service."""
    found = catalog.service(service)
    if found.is_http:
        return [port_base + found.port_offset]
    return [port_base + found.port_offset + i for i in range(replicas)]


@dataclass
class Child:
    service: str
    replica: int
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.5
    env: dict[str, str] = field(default_factory=dict)
    probe: PingProbe | None = None
    next_probe: float = 0.0
    answered_at: float | None = None
    last_probe_failed: bool = False
    killed_as_hung: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PingProbe:
    """One ``GET /api/ping`` on a non-blocking socket, advanced a step on each supervisor pass.

    By hand rather than with httpx: the supervisor must never wait on a hung child, and it must
    not start threads (children are spawned with a ``preexec_fn``, unsafe once threads exist).
    """

    def __init__(self, host: str, port: int, now: float) -> None:
        self.started = now
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setblocking(False)
        request = f"GET /api/ping HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        self._unsent = request.encode()
        self._received = b""
        self._refused = self._socket.connect_ex((host, port)) not in (0, errno.EINPROGRESS)

    def poll(self, now: float) -> bool | None:
        """True once answered 200; False if refused, broken or late; None while waiting."""
        if self._refused:
            return False
        try:
            while self._unsent:  # EAGAIN until the connection is established
                self._unsent = self._unsent[self._socket.send(self._unsent) :]
            while b"\r\n" not in self._received and len(self._received) < 1024:
                chunk = self._socket.recv(1024)
                if not chunk:
                    break
                self._received += chunk
        except BlockingIOError:
            return None if now - self.started < PING_TIMEOUT_SECONDS else False
        except OSError:
            return False
        status = self._received.split(b"\r\n", 1)[0].split()
        return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1] == b"200"

    def close(self) -> None:
        self._socket.close()


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this child when `stockday up` dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


class Stack:
    def __init__(
        self,
        *,
        data_dir: Path,
        port_base: int,
        replicas: int,
        settings: Settings,
        host: str = "127.0.0.1",
        log_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port_base = port_base
        self.replicas = replicas
        self.host = host
        self.log_dir = (log_dir or self.data_dir / "logs").resolve()
        self.say = say
        self.stopping = False
        self.env = {
            **os.environ,
            "STOCKDAY_DATA_DIR": str(self.data_dir),
            "STOCKDAY_SYMBOL_URL": f"http://{host}:{port_base + 1}",
            "STOCKDAY_PRICE_URL": f"http://{host}:{port_base + 2}",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.hang_seconds = settings.hang_seconds
        self.gateway = settings.gateway
        self.children = self._plan()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port_base}/"

    def _plan(self) -> list[Child]:
        # Each service's own entry point, not the `stockday` CLI: uvicorn's spawned workers
        # re-import the main module, and the CLI's imports would slow every one of them.
        children: list[Child] = []
        haproxy = haproxy_binary() if self.gateway else None
        if haproxy:
            # HAProxy takes the site's port and forwards to the frontend on a port of its own.
            argv = [haproxy, "-db", "-f", str(self.gateway_config_path)]
            children.append(Child(GATEWAY, 0, self.port_base + PORT_OFFSETS["frontend"], argv))
        start_order = tuple(reversed(catalog.SERVICES))  # called services before their callers
        for service in (s for s in start_order if s.is_http):
            port = self.port_base + service.port_offset
            if service.name == "frontend" and haproxy:
                port = self.port_base + FRONTEND_BEHIND_GATEWAY_OFFSET
            argv = [
                *service_command(service.name, self.host, port),
                "--workers",
                str(self.replicas),
            ]
            # uvicorn's workers share one metrics view (prometheus_client's multiprocess mode),
            # so /metrics answers for the service whichever worker serves it.
            metrics_dir = self.data_dir / "run" / "metrics" / service.name
            env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
            children.append(Child(service.name, 0, port, argv, env=env))
        for service in (s for s in start_order if not s.is_http):
            ports = health_ports(service.name, self.port_base, self.replicas)
            for replica, port in enumerate(ports):
                argv = service_command(service.name, self.host, port)
                children.append(Child(service.name, replica, port, argv))
        return children

    def ports_in_use(self) -> list[int]:
        busy = []
        for child in self.children:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex((self.host, child.port)) == 0:
                    busy.append(child.port)
        return busy

    @property
    def gateway_config_path(self) -> Path:
        return self.data_dir / "run" / "haproxy.cfg"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if any(child.service == GATEWAY for child in self.children):
            self.gateway_config_path.parent.mkdir(parents=True, exist_ok=True)
            self.gateway_config_path.write_text(
                haproxy_config(
                    host=self.host,
                    port=self.port_base + PORT_OFFSETS["frontend"],
                    frontend_port=self.port_base + FRONTEND_BEHIND_GATEWAY_OFFSET,
                )
            )
        else:
            self.say("haproxy is not installed: the frontend is served directly, without retries")
        for child in self.children:
            self._spawn(child)
        self._write_state()

    def _spawn(self, child: Child) -> None:
        log_path = self.log_dir / f"{child.service}-{child.replica}.log"
        if metrics_dir := child.env.get("PROMETHEUS_MULTIPROC_DIR"):
            # A fresh master starts fresh counters: files of an earlier run would be summed in.
            shutil.rmtree(metrics_dir, ignore_errors=True)
            Path(metrics_dir).mkdir(parents=True)
        with open(log_path, "ab") as log:
            child.process = subprocess.Popen(
                child.argv,
                env={**self.env, **child.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches `up` only; it stops children in order
                preexec_fn=die_with_parent,  # safe: `up` is single-threaded
            )
        child.started_at = time.monotonic()
        self._end_probe(child)
        child.next_probe = child.started_at + PING_INTERVAL_SECONDS
        child.answered_at = None
        child.last_probe_failed = child.killed_as_hung = False

    @property
    def state_path(self) -> Path:
        return self.data_dir / "run" / "stack.json"

    def _write_state(self) -> None:
        """Where every process is, for `stockday status` (written on every start and restart)."""
        state = {
            "url": self.url,
            "replicas": self.replicas,
            "children": [
                {"service": c.service, "replica": c.replica, "port": c.port, "pid": c.pid}
                for c in self.children
            ],
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2))
        temporary.replace(self.state_path)

    def supervise_once(self) -> None:
        """Kill hung consumers; restart children that exited, with a backoff that resets after a
        healthy minute. Never waits on a child: a pass costs a few non-blocking socket calls."""
        now = time.monotonic()
        if not self.stopping:
            self._kill_hung_consumers(now)
        for child in self.children:
            if self.stopping or child.process is None or child.running:
                continue
            if child.next_start == 0.0:
                code = child.process.returncode
                if now - child.started_at > 60:
                    child.backoff = 0.5
                child.next_start = now + child.backoff
                child.backoff = min(MAX_RESTART_DELAY, child.backoff * 2)
                self.say(
                    f"{child.service}[{child.replica}] exited with {code}; "
                    f"restarting in {child.next_start - now:.1f}s"
                )
            elif now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self._spawn(child)
                self._write_state()

    def _kill_hung_consumers(self, now: float) -> None:
        """Probe each running consumer's /api/ping and SIGKILL one silent for the hang limit.

        HTTP services are left to uvicorn, whose master already kills workers that stop
        answering its own health pings.
        """
        for child in self.children:
            if (
                child.service not in CONSUMER_PORT_OFFSETS
                or child.process is None
                or not child.running
            ):
                self._end_probe(child)
                continue
            if child.killed_as_hung:
                continue
            if child.probe is None and now >= child.next_probe:
                child.probe = PingProbe(self.host, child.port, now)
                child.next_probe = now + PING_INTERVAL_SECONDS
            if child.probe is not None and (answered := child.probe.poll(now)) is not None:
                self._end_probe(child)
                child.last_probe_failed = not answered
                if answered:
                    child.answered_at = now
            if child.answered_at is None:  # still starting
                silent = now - (child.started_at + START_GRACE_SECONDS)
                since = f"{now - child.started_at:.1f}s after its start"
            else:
                silent = now - child.answered_at
                since = f"for {silent:.1f}s"
            # Only a failed probe condemns: after `up` itself was stalled (suspended, stopped),
            # a long silence is ours, and the next probe decides.
            if silent < self.hang_seconds or not child.last_probe_failed:
                continue
            self.say(
                f"{child.service}[{child.replica}] (pid {child.pid}) has not answered /api/ping "
                f"{since}: hung; killing it"
            )
            self._end_probe(child)
            child.killed_as_hung = True
            # Its own session (start_new_session): the group is it and whatever it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)

    @staticmethod
    def _end_probe(child: Child) -> None:
        if child.probe is not None:
            child.probe.close()
            child.probe = None

    def readiness(self, timeout: float = 1.0) -> dict[tuple[str, int], bool]:
        ready: dict[tuple[str, int], bool] = {}
        with httpx.Client(timeout=timeout) as client:
            for child in self.children:
                try:
                    r = client.get(f"http://{self.host}:{child.port}/api/ready")
                    ready[(child.service, child.replica)] = r.status_code == 200
                except httpx.HTTPError:
                    ready[(child.service, child.replica)] = False
        return ready

    def stop(self) -> None:
        """SIGTERM everything (frontend first), wait for graceful exit, then SIGKILL."""
        self.stopping = True
        for child in self.children:
            self._end_probe(child)
        # The front door first, and wait for it: HAProxy's graceful stop (SIGUSR1; SIGTERM
        # would cut open requests) stops taking connections and lets the open ones finish, so
        # no page view is in flight when the frontend stops.
        for child in self.children:
            if child.service == GATEWAY and child.running and child.process:
                child.process.send_signal(signal.SIGUSR1)
                try:
                    child.process.wait(timeout=GATEWAY_DRAIN_SECONDS)
                except subprocess.TimeoutExpired:
                    child.process.kill()
        for service in catalog.SERVICES:  # callers before the services they call
            for child in self.children:
                if child.service == service.name and child.running and child.process:
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.service}[{child.replica}] did not stop in time; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self.state_path.unlink(missing_ok=True)

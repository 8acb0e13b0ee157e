"""`stockday up`: every replica of every service as a process of its own, behind HAProxy.

The local picture of a Kubernetes deployment: each replica is a pod (one single-process server,
or one consumer, on an address and port of its own, in a zone), HAProxy is the Service and the
load balancer, and this supervisor is the kubelet and the deployment controller in one:
- it restarts any child that exits, with a backoff that doubles up to 30 s and resets after a
  healthy minute; HAProxy itself comes back within a fraction of a second;
- it probes each replica's liveness (``/api/ping``) from inside the replica's zone and kills one
  that stays silent for the ``hang_seconds`` setting (stopped, or its event loop blocked), so
  that the restart replaces it; HAProxy's readiness checks have taken it out of rotation long
  before;
- nothing it starts outlives it: each child gets SIGKILL from the kernel if the supervisor dies
  (``PR_SET_PDEATHSIG``), and the supervisor adopts any process a child leaves behind
  (``PR_SET_CHILD_SUBREAPER``) and kills it; how is in :mod:`stockday.devstack.children`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stockday.devstack import partition
from stockday.devstack.children import (
    FIRST_RESTART_DELAY,
    Child,
    become_subreaper,
    describe_child,
    kill_group,
    kill_strays,
    start,
)
from stockday.devstack.haproxy import haproxy_binary, haproxy_config
from stockday.devstack.logfiles import LogFiles
from stockday.devstack.probes import PingProbe
from stockday.devstack.prometheus import prometheus_argv, prometheus_config
from stockday.devstack.state import started_at, state_path, write_state
from stockday.devstack.topology import FRONT_HOST, GATEWAY, Topology
from stockday.runtime import catalog
from stockday.runtime.catalog import service_command
from stockday.runtime.settings import Settings

MAX_RESTART_DELAY = 30.0
# HAProxy holds every front port: it is restarted at once, and never waits long.
GATEWAY_RESTART_DELAY = 0.05
MAX_GATEWAY_RESTART_DELAY = 0.5
HEALTHY_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0
GATEWAY_DRAIN_SECONDS = 10.0
# One liveness probe per replica at most this often. A replica that has not answered for the
# hang_seconds setting is hung; until it first answers, the limit counts from this long after
# its start (it imports its modules, opens its stores and binds its port meanwhile).
PING_INTERVAL_SECONDS = 1.0
START_GRACE_SECONDS = 10.0


class Stack:
    def __init__(
        self,
        *,
        data_dir: Path,
        topology: Topology,
        settings: Settings,
        log_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.topology = topology
        self.log_dir = (log_dir or self.data_dir / "logs").resolve()
        self.logs = LogFiles(self.log_dir, settings.log_max_bytes, settings.log_backup_count)
        self.say = say
        self.stopping = False
        self.started_at = 0.0
        self.hang_seconds = settings.hang_seconds
        self.settings = settings
        self.scrape_seconds = settings.prometheus_scrape_seconds
        self._wakeup: int | None = None  # read end of the pipe signals wake `pause` through
        self.env = {
            **os.environ,
            "STOCKDAY_DATA_DIR": str(self.data_dir),
            "STOCKDAY_SYMBOL_URL": topology.front_url("stock-symbol"),
            "STOCKDAY_PRICE_URL": topology.front_url("stock-price"),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.children = self._plan()

    @property
    def url(self) -> str:
        return self.topology.site_url

    @property
    def replicas(self) -> int:
        return self.topology.replicas

    @property
    def gateway_config_path(self) -> Path:
        return self.data_dir / "run" / "haproxy.cfg"

    @property
    def state_path(self) -> Path:
        return state_path(self.data_dir)

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def _plan(self) -> list[Child]:
        gateway = [haproxy_binary(), "-db", "-f", str(self.gateway_config_path)]
        children = [Child(GATEWAY, None, gateway, backoff=GATEWAY_RESTART_DELAY)]
        if self.topology.prometheus:
            config, data = self.run_dir / "prometheus.yml", self.data_dir / "prometheus"
            children.append(Child("prometheus", None, prometheus_argv(self.topology, config, data)))
        for replica in self.topology.all_replicas:
            # Each service's own entry point, not the `stockday` CLI and its heavier imports.
            argv = service_command(replica.service, replica.host, replica.port)
            children.append(Child(replica.name, replica, argv))
        return children

    def replicas_of(self, service: str) -> list[Child]:
        return [c for c in self.children if c.service == service]

    def start(self) -> None:
        """Write HAProxy's configuration and start every process, HAProxy first."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.gateway_config_path.parent.mkdir(parents=True, exist_ok=True)
        self.gateway_config_path.write_text(haproxy_config(self.topology, self.settings))
        if self.topology.prometheus:
            self._write_prometheus_config()
        become_subreaper()
        self.started_at = time.time()
        self._heal_partitions()  # rules left by a chaos command that was killed
        for child in self.children:
            self._spawn(child)
        self._write_state()

    def _write_prometheus_config(self) -> None:
        """Its configuration and the SLO rules, generated as the ones shipped in deploy/."""
        from stockday.slo.prometheus import rules_file

        rules = self.run_dir / "slo-rules.yaml"
        rules.write_text(rules_file())
        config = prometheus_config(self.topology, self.scrape_seconds, rules)
        (self.run_dir / "prometheus.yml").write_text(config)

    def _spawn(self, child: Child) -> None:
        log = self.logs.pipe_for(child.name)  # into its log file, rotated by size
        child.process = start(child.argv, {**self.env, **child.env}, log)
        child.started = started_at(child.process.pid)
        child.spawned_at = time.monotonic()
        self._end_probe(child)
        child.next_probe = child.spawned_at + PING_INTERVAL_SECONDS
        child.answered_at = None
        child.last_probe_failed = child.killed_as_hung = False

    def _write_state(self) -> None:
        """Where every process is, for `stockday status` and `stockday chaos`."""
        write_state(self.data_dir, self.describe())

    def describe(self) -> dict[str, Any]:
        plan = self.topology
        return {
            "url": self.url,
            "port_base": plan.port_base,
            "replicas": plan.replicas,
            "zones": [zone.name for zone in plan.zone_list],
            "stats_url": f"http://{FRONT_HOST}:{plan.stats_port}/",
            "prometheus_url": plan.prometheus_url if plan.prometheus else None,
            "supervisor": {"pid": os.getpid(), "started": started_at(os.getpid())},
            "children": [describe_child(c) for c in self.children],
        }

    def supervise_once(self) -> None:
        """Kill hung replicas; restart children that exited, each after its backoff. Never
        waits on a child: a pass costs a few non-blocking socket calls."""
        if self.stopping:
            return
        now = time.monotonic()
        self._kill_hung(now)
        for child in self.children:
            if child.process is None or child.running:
                continue
            if child.next_start == 0.0:
                self._schedule_restart(child, now)
            elif now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self._spawn(child)
                self._write_state()

    def pause(self, longest: float) -> None:
        """Wait until there is something to do, ``longest`` seconds at most: a child exiting
        or a signal ends the wait at once (the signal module writes to a pipe on SIGCHLD and on
        the stop signals), and a restart ends it when it is due, so that HAProxy is back
        within its backoff rather than at the next of the loop's passes. What the children
        log meanwhile is copied to their files. For the main thread."""
        if self._wakeup is None:
            self._wakeup, write = os.pipe()
            os.set_blocking(self._wakeup, False)
            os.set_blocking(write, False)
            signal.set_wakeup_fd(write)
            if signal.getsignal(signal.SIGCHLD) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        now = time.monotonic()
        due = [child.next_start - now for child in self.children if child.next_start]
        ready, _, _ = select.select(
            [self._wakeup, *self.logs.readable()], [], [], max(0.0, min([longest, *due]))
        )
        self.logs.read(ready)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wakeup, 512):
                pass

    def _schedule_restart(self, child: Child, now: float) -> None:
        assert child.process is not None
        self._reap_strays()
        gateway = child.name == GATEWAY
        if now - child.spawned_at > HEALTHY_SECONDS:
            child.backoff = GATEWAY_RESTART_DELAY if gateway else FIRST_RESTART_DELAY
        child.next_start = now + child.backoff
        limit = MAX_GATEWAY_RESTART_DELAY if gateway else MAX_RESTART_DELAY
        child.backoff = min(limit, child.backoff * 2)
        self.say(
            f"{child.name} exited with {child.process.returncode}; "
            f"restarting in {child.next_start - now:.1f}s"
        )

    def _kill_hung(self, now: float) -> None:
        for child in self.children:
            replica = child.replica
            if replica is None or not child.running or child.killed_as_hung:
                self._end_probe(child)
                continue
            if child.probe is None and now >= child.next_probe:
                child.probe = PingProbe(replica.host, replica.port, now, replica.zone.probe_source)
                child.next_probe = now + PING_INTERVAL_SECONDS
            if child.probe is not None and (answered := child.probe.poll(now)) is not None:
                self._end_probe(child)
                child.last_probe_failed = not answered
                if answered:
                    child.answered_at = now
            if child.answered_at is None:  # still starting
                silent = now - (child.spawned_at + START_GRACE_SECONDS)
                since = f"{now - child.spawned_at:.1f}s after its start"
            else:
                silent = now - child.answered_at
                since = f"for {silent:.1f}s"
            # Only a failed probe condemns: after `up` itself was stalled (suspended, stopped),
            # a long silence is ours, and the next probe decides.
            if silent < self.hang_seconds or not child.last_probe_failed:
                continue
            self.say(f"{child.name} (pid {child.pid}) has not answered /api/ping {since}: hung")
            self._end_probe(child)
            child.killed_as_hung = True
            kill_group(child.process)

    def _reap_strays(self) -> None:
        """Kill processes left by a child that died, adopted by this supervisor (subreaper)."""
        kill_strays((child.pid for child in self.children), self.started_at, self.say)

    @staticmethod
    def _end_probe(child: Child) -> None:
        if child.probe is not None:
            child.probe.close()
            child.probe = None

    def stop(self) -> None:
        """HAProxy first, drained; then SIGTERM every replica (callers before the services
        they call), wait for their graceful exit, then SIGKILL what is left."""
        self.stopping = True
        for child in self.children:
            self._end_probe(child)
        gateway = self.children[0]
        if gateway.running and gateway.process:
            # Graceful stop (SIGUSR1; SIGTERM would cut open requests): no new connections,
            # open requests finish.
            gateway.process.send_signal(signal.SIGUSR1)
            try:
                gateway.process.wait(timeout=GATEWAY_DRAIN_SECONDS)
            except subprocess.TimeoutExpired:
                gateway.process.kill()
        for service in catalog.SERVICES:
            for child in self.replicas_of(service.name):
                if child.running and child.process:
                    child.process.send_signal(signal.SIGTERM)
        for child in self.replicas_of("prometheus"):  # last: it saw the replicas to the end
            if child.running and child.process:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in time; killing it")
                kill_group(child.process)
                child.process.wait()
        self._reap_strays()
        self.logs.close()
        self._heal_partitions()
        self.state_path.unlink(missing_ok=True)

    def _heal_partitions(self) -> None:
        if self.topology.zones == 1:
            return
        with contextlib.suppress(partition.PartitionUnavailable):
            if healed := partition.heal(self.topology.port_base):
                self.say(f"removed {healed} partition rules")

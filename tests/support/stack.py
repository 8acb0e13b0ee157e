"""``python -m stockday up`` as a real process on free loopback ports, the way the README
starts it: for the end-to-end and failure tests and for the benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from stockday.contracts.stocks import StockCreate
from stockday.devstack.state import load_state
from stockday.devstack.topology import Replica, Topology, port_offsets
from stockday.runtime.settings import Settings
from tests.support import images
from tests.support.ports import HOST, free_ports
from tests.support.servers import Started, shared_memcached, shared_moto

READY_LINE = "Stock-of-the-Day is at"
READY_IN = re.compile(r"ready in ([0-9.]+)\s*s")
MAX_RECEIVES = 3
# The tests and benchmarks send from one address far more than a visitor would: limits far
# above that, still counted on every request (tests/abuse sets tight ones of its own).
GENEROUS_LIMITS = {
    "STOCKDAY_RATE_LIMIT_PAGES": "100000000/hour",
    "STOCKDAY_RATE_LIMIT_CREATES": "1000000/hour",
    "STOCKDAY_RATE_LIMIT_UPLOADS": "1000000/hour",
    "STOCKDAY_UPLOAD_BYTES_PER_HOUR": str(1 << 40),
}


def free_port_base(replicas: int = 2) -> int:
    """A port base N whose every port of a stack (fronts, statistics, replicas) is free."""
    return free_ports(port_offsets(replicas))


def add_stock(api: httpx.Client, symbol: str, image: bytes | None = None) -> str:
    """Add ``symbol`` with a logo through stock-symbol's API, as the form does; its upload id."""
    image = image or images.png(300, 150)
    uploaded = api.post("/api/uploads", files={"file": ("l.png", image, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    upload_id: str = uploaded.json()["upload_id"]
    body = StockCreate(symbol=symbol, name=f"{symbol} Inc.", upload_id=upload_id)
    created = api.post("/api/stocks", json=body.model_dump(exclude_none=True))
    assert created.status_code == 201, created.text
    return upload_id


def backend_env(backend: str, port_base: int) -> dict[str, str]:
    """Settings for a stack on ``backend``; on aws, resource names of its own on the emulator."""
    if backend == "local":
        return {"STOCKDAY_BACKEND": "local"}
    return {
        "STOCKDAY_BACKEND": "aws",
        "STOCKDAY_AWS_ENDPOINT_URL": shared_moto().url,
        "STOCKDAY_AWS_REGION": "us-east-1",
        "STOCKDAY_DYNAMODB_TABLE": f"stocks-{port_base}",
        "STOCKDAY_S3_BUCKET": f"objects-{port_base}",
        "STOCKDAY_LOGO_JOBS_QUEUE": f"logo-jobs-{port_base}",
        "STOCKDAY_LOGO_EVENTS_QUEUE": f"logo-events-{port_base}",
        "STOCKDAY_MEMCACHED_SERVERS": shared_memcached().address,
        # moto answers in milliseconds when idle but can take seconds on a busy CI machine
        # (one Python process emulating every table, queue and bucket of the session).
        "STOCKDAY_HTTP_TIMEOUT_SECONDS": "10",
        "STOCKDAY_AWS_TIMEOUT_SECONDS": "10",
    }


class RunningStack(Started):
    """The stack in a data directory of its own; started by ``start()`` or a ``with`` block.

    Records how long its "ready" line took to appear, seen from outside, and what ``up``
    itself printed as its time to ready.
    """

    def __init__(
        self,
        data_dir: Path,
        port_base: int | None = None,
        replicas: int = 2,
        backend: str = "local",
        zones: int = 1,
        env: dict[str, str] | None = None,
        prometheus: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port_base = port_base if port_base is not None else free_port_base(replicas)
        self.replicas = replicas
        self.zones = zones
        self.topology = Topology(self.port_base, replicas, zones, prometheus)
        self.backend = backend
        self.env = {
            "STOCKDAY_QUEUE_WAIT_SECONDS": "1",
            "STOCKDAY_LOG_LEVEL": "INFO",
            # Poison messages reach the dead-letter queue in about a second, not five.
            "STOCKDAY_QUEUE_RETRY_DELAY_SECONDS": "0.2",
            "STOCKDAY_QUEUE_MAX_RECEIVES": str(MAX_RECEIVES),
            "STOCKDAY_DATA_DIR": str(data_dir),
            **GENEROUS_LIMITS,
            **backend_env(backend, self.port_base),
            **(env or {}),
        }
        self.frontend = f"http://{HOST}:{self.port_base}"
        self.symbol = f"http://{HOST}:{self.port_base + 1}"
        self.price = f"http://{HOST}:{self.port_base + 2}"
        self.process: subprocess.Popen[str] | None = None
        self.output_path = data_dir.parent / f"up-{self.port_base}.out"
        self._offset = 0
        self.ready_line_seconds = 0.0  # from launch to the ready line, as seen from outside
        self.printed_ready_seconds: float | None = None  # what `up` printed ("ready in X s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._offset = len(self.output())
        # rich wraps at 80 columns when not on a terminal: keep the ready line on one line.
        env = {**os.environ, "COLUMNS": "200", **self.env}
        provision = ["--provision"] if self.backend == "aws" else []
        provision += ["--prometheus"] if self.topology.prometheus else []
        with open(self.output_path, "a") as out:
            launched = time.monotonic()
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "stockday", "up"),
                    *("--port-base", str(self.port_base)),
                    *("--data-dir", str(self.data_dir)),
                    *("--replicas", str(self.replicas)),
                    *("--zones", str(self.zones)),
                    *provision,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        deadline = launched + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stockday up exited early:\n{self.output()}")
            text = self.output()[self._offset :]
            if READY_LINE in text:
                self.ready_line_seconds = time.monotonic() - launched
                printed = READY_IN.search(text)
                self.printed_ready_seconds = float(printed.group(1)) if printed else None
                return
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"stack not ready after {timeout:.0f}s:\n{self.output()}")

    @property
    def settings(self) -> Settings:
        """The settings the stack's services run with, for tests that reach its backends."""
        env = {k.removeprefix("STOCKDAY_").lower(): v for k, v in self.env.items()}
        return Settings.model_validate(env)

    @property
    def frontend_server(self) -> str:
        """One frontend replica itself, not through HAProxy."""
        return self.replica_url(self.replicas_of("frontend")[0])

    def replicas_of(self, service: str) -> tuple[Replica, ...]:
        return self.topology.replicas_of(service)

    @staticmethod
    def replica_url(replica: Replica) -> str:
        return f"http://{replica.host}:{replica.port}"

    def state(self) -> dict[str, Any]:
        """What the running stack records about its processes (pids, zones, restarts)."""
        return load_state(self.data_dir)

    def pid_of(self, name: str) -> int:
        """The pid of one process of the stack, by its name (``frontend-a0``, ``haproxy``)."""
        for child in self.state()["children"]:
            if child["name"] == name:
                return int(child["pid"])
        raise KeyError(name)

    def stack_pids(self) -> dict[str, int]:
        """Every process the stack runs now, by name."""
        return {c["name"]: int(c["pid"]) for c in self.state()["children"] if c["pid"]}

    def output(self) -> str:
        return self.output_path.read_text() if self.output_path.exists() else ""

    def seed(self) -> None:
        """Add the demo stocks through ``stockday seed``, as the README says."""
        subprocess.run(
            [sys.executable, "-m", "stockday", "seed", "--port-base", str(self.port_base)],
            check=True,
            capture_output=True,
            env={**os.environ, **self.env},
            timeout=120,
        )

    def consumer_pids(self, service: str) -> list[int]:
        """Consumer replicas' pids, as each one reports it on its health port's /api/ping."""
        with httpx.Client(timeout=5.0) as client:
            return [
                int(client.get(f"{self.replica_url(r)}/api/ping").json()["pid"])
                for r in self.replicas_of(service)
            ]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an operator stops it; its exit code (killed if it outlives ``timeout``)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def client(self, base: str) -> httpx.Client:
        return httpx.Client(base_url=base, timeout=10.0)


def status_once(stack: RunningStack) -> str:
    """What `stockday status --once` prints about the running stack."""
    return subprocess.run(
        [sys.executable, "-m", "stockday", "status", "--once", "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout

"""Start `stockday up` as a real process on free loopback ports, the way the README does."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from stockday.devstack.supervisor import (
    CONSUMER_PORT_OFFSETS,
    FRONTEND_BEHIND_GATEWAY_OFFSET,
    PORT_OFFSETS,
)
from stockday.runtime.settings import Settings
from tests.servers import port_is_free


def free_port_base(replicas: int = 2) -> int:
    offsets = [*PORT_OFFSETS.values(), FRONTEND_BEHIND_GATEWAY_OFFSET]
    for base in CONSUMER_PORT_OFFSETS.values():
        offsets += [base + i for i in range(replicas)]
    # Stay below the kernel's ephemeral range: an outgoing connection could hold any port in it.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, min(low, 32_768) - 100, 50)
        if all(port_is_free(base + offset) for offset in offsets):
            return base
    raise RuntimeError("no free port range on 127.0.0.1")


MAX_RECEIVES = 3


def backend_env(backend: str, port_base: int) -> dict[str, str]:
    """Settings for a stack on ``backend``; on aws, resource names of its own on the emulator."""
    if backend == "local":
        return {"STOCKDAY_BACKEND": "local"}
    from tests.servers import shared_memcached, shared_moto

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


class RunningStack:
    def __init__(
        self, data_dir: Path, port_base: int, replicas: int = 2, backend: str = "local"
    ) -> None:
        self.data_dir = data_dir
        self.port_base = port_base
        self.replicas = replicas
        self.backend = backend
        self.env = {
            "STOCKDAY_QUEUE_WAIT_SECONDS": "1",
            "STOCKDAY_LOG_LEVEL": "INFO",
            # Poison messages reach the dead-letter queue in about a second, not five.
            "STOCKDAY_QUEUE_RETRY_DELAY_SECONDS": "0.2",
            "STOCKDAY_QUEUE_MAX_RECEIVES": str(MAX_RECEIVES),
            "STOCKDAY_DATA_DIR": str(data_dir),
            **backend_env(backend, port_base),
        }
        self.frontend = f"http://127.0.0.1:{port_base}"
        self.symbol = f"http://127.0.0.1:{port_base + 1}"
        self.price = f"http://127.0.0.1:{port_base + 2}"
        self.process: subprocess.Popen[str] | None = None
        self.output_path = data_dir.parent / f"up-{port_base}.out"
        self._offset = 0

    def start(self, timeout: float = 60.0) -> None:
        self._offset = len(self.output())
        env = {**os.environ, **self.env}
        provision = ["--provision"] if self.backend == "aws" else []
        with open(self.output_path, "a") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stockday",
                    "up",
                    "--port-base",
                    str(self.port_base),
                    "--data-dir",
                    str(self.data_dir),
                    "--replicas",
                    str(self.replicas),
                    *provision,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stockday up exited early:\n{self.output()}")
            if "Stock-of-the-Day is at" in self.output()[self._offset :]:
                return
            time.sleep(0.1)
        raise TimeoutError(f"stack not ready after {timeout}s:\n{self.output()}")

    @property
    def settings(self) -> Settings:
        """The settings the stack's services run with, for tests that reach its backends."""
        env = {k.removeprefix("STOCKDAY_").lower(): v for k, v in self.env.items()}
        return Settings.model_validate(env)

    def output(self) -> str:
        return self.output_path.read_text() if self.output_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
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

"""Real servers the contract and end-to-end tests talk to: AWS emulators (moto, and s3rver
for S3) and memcached.

Each runs as its own process on a free loopback port below the ephemeral range, and is stopped
by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest

from stockday.devstack.emulator import memcached_command, stop_process
from tests.support.ports import HOST, free_port, wait_for_port
from tests.support.programs import in_ci, require_program

# The npm packages of the emulators other than moto, installed by `make test` (npm ci).
NPM_EMULATORS = Path(__file__).resolve().parents[1] / "emulators"
# s3rver checks signatures against its one built-in account.
S3RVER_KEY_PAIR = ("S3RVER", "S3RVER")

# Fake credentials for the emulator, set once for the whole test session: moto accepts any.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process, timeout=10)


class Started:
    """Used in a ``with`` block: started on entering it, stopped on leaving it."""

    def start(self) -> None:
        """Nothing more to start by default: the server started when it was made."""

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ServerProcess:
    """A server on 127.0.0.1:``port``, run by ``process``."""

    port: int
    process: subprocess.Popen[bytes]
    address: str = field(init=False)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.address = f"{HOST}:{self.port}"
        self.url = f"http://{self.address}"


@contextmanager
def moto_server(command: list[str] | None = None) -> Iterator[ServerProcess]:
    """moto in server mode; ``command`` (given the port as its last argument) replaces it."""
    port = free_port()
    argv = [*(command or [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p"]), str(port)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **EMULATOR_ENV},
    )
    try:
        wait_for_port(port, process)
        yield ServerProcess(port, process)
    finally:
        stop(process)


def npm_program(name: str) -> Path:
    """An emulator installed from npm into tests/emulators: without it the test is skipped
    locally and failed under CI, as for any program a test needs."""
    program = NPM_EMULATORS / "node_modules" / ".bin" / name
    if not program.exists():
        message = f"{name} is not installed: run `make emulators` (make test does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return program


@contextmanager
def s3rver_server() -> Iterator[ServerProcess]:
    """s3rver (an S3 emulator from npm) on a free port, keeping its objects in a fresh
    directory that is removed with it."""
    program = npm_program("s3rver")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="s3rver-")
    command = [str(program), "-d", directory, "-a", HOST, "-p", str(port), "-s"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield ServerProcess(port, process)
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def memcached_server(port: int | None = None) -> Iterator[ServerProcess]:
    """A real memcached without UDP, on ``port`` (to restart one in place) or a free one."""
    binary = require_program("memcached")
    port = port or free_port()
    command = [*memcached_command(binary, port), "-m", "64"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield ServerProcess(port, process)
    finally:
        stop(process)


# One emulator and one memcached per test session, started on first use (contract-suite
# factories call these directly, so the suites themselves stay unchanged) and stopped by the
# session fixture in conftest.py.
_shared_servers: dict[str, ServerProcess] = {}
_shared_stack = ExitStack()


def shared_moto() -> ServerProcess:
    if "moto" not in _shared_servers:
        for name, value in EMULATOR_ENV.items():
            os.environ[name] = value
        _shared_servers["moto"] = _shared_stack.enter_context(moto_server())
    return _shared_servers["moto"]


def shared_s3rver() -> ServerProcess:
    if "s3rver" not in _shared_servers:
        _shared_servers["s3rver"] = _shared_stack.enter_context(s3rver_server())
    return _shared_servers["s3rver"]


def shared_memcached() -> ServerProcess:
    if "memcached" not in _shared_servers:
        _shared_servers["memcached"] = _shared_stack.enter_context(memcached_server())
    return _shared_servers["memcached"]


def stop_shared_servers() -> None:
    _shared_servers.clear()
    _shared_stack.close()


def local_service_env(data_dir: Path) -> dict[str, str]:
    """The environment of a service process on the embedded backends, free of the caller's
    STOCKDAY_* settings and metrics directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKDAY_", "PROMETHEUS_"))}
    env.update({"STOCKDAY_BACKEND": "local", "STOCKDAY_DATA_DIR": str(data_dir)})
    return env


@contextmanager
def container_service(
    python: str, args: list[str], port: int, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """One service started as its container starts it (``python -m stockday.runtime.container``),
    on 127.0.0.1:``port``; yields once it answers /api/ping, stops it with SIGTERM after."""
    import httpx

    with log.open("w") as out:
        process = subprocess.Popen(
            [python, "-m", "stockday.runtime.container", *args, "--host", "127.0.0.1"],
            env={**env, "PORT": str(port)},
            cwd="/",
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no answer on {port}:\n{log.read_text()}"
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()  # never leave a stuck service behind
                process.wait()
                raise

"""A local AWS emulator (moto in server mode) for running the aws backend without an account.

moto is a development dependency: it is in the project's dev group (installed by ``make up``)
and absent from production images, which talk to AWS itself.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time

from stockday.devstack.children import die_with_parent

# moto accepts any credentials; these are placeholders for the emulator only, never for AWS.
EMULATOR_KEY_PAIR = ("emulator", "emulator")
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": EMULATOR_KEY_PAIR[0],
    "AWS_SECRET_ACCESS_KEY": EMULATOR_KEY_PAIR[1],
}


class EmulatorUnavailable(RuntimeError):
    """moto is not installed or its server did not start."""


def start_emulator(
    port: int, host: str = "127.0.0.1", timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """Start a moto server on ``host:port`` and return once it accepts connections."""
    if importlib.util.find_spec("moto") is None:
        raise EmulatorUnavailable(
            "the AWS emulator needs moto: install the dev dependencies (uv sync) first"
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **EMULATOR_CREDENTIALS},
        preexec_fn=die_with_parent,  # safe: the CLI starts it before any thread
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorUnavailable(f"moto server exited with code {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((host, port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise EmulatorUnavailable(f"moto server did not listen on {host}:{port} in {timeout:.0f}s")


def memcached_command(binary: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """A memcached server on ``host:port`` without UDP (it refuses to run as root unasked)."""
    command = [binary, "-l", host, "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:
        command += ["-u", "root"]
    return command


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

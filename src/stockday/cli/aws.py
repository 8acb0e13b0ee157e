"""`stockday emulator` and `stockday provision`: AWS resources on an emulator or an account."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Annotated

import typer

from stockday.cli.session import StopSignal, console, valid_settings
from stockday.devstack.emulator import (
    EMULATOR_CREDENTIALS,
    EMULATOR_KEY_PAIR,
    EmulatorUnavailable,
    memcached_command,
    start_emulator,
    stop_process,
)
from stockday.domain.errors import BackendUnavailable
from stockday.runtime.settings import Settings

EMULATOR_PORT_OFFSET = 5
MEMCACHED_PORT_OFFSET = 6


def provision_resources(settings: Settings, *, on_emulator: bool = False) -> None:
    """Create the missing table, queues and bucket, or exit 1 saying why not."""
    from stockday.aws.provision import provision

    credentials = EMULATOR_KEY_PAIR if on_emulator else None
    try:
        provision(settings, say=console.print, emulator_credentials=credentials)
    except BackendUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def start_beside_stack(
    settings: Settings, port_base: int
) -> tuple[Settings, dict[str, str], list[subprocess.Popen[bytes]]]:
    """Start moto (and memcached, if installed) beside the stack.

    Returns the settings to use, the environment the stack's processes need to reach them
    (the emulator's placeholder credentials included), and the processes to stop at the end.
    """
    from stockday.devstack.children import die_with_parent

    emulator_port = port_base + EMULATOR_PORT_OFFSET
    try:
        moto = start_emulator(emulator_port)
    except EmulatorUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    helpers = [moto]
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {"STOCKDAY_AWS_ENDPOINT_URL": endpoint, **EMULATOR_CREDENTIALS}
    console.print(f"AWS emulator (moto) at {endpoint}")
    memcached = shutil.which("memcached")
    if memcached:
        memcached_port = port_base + MEMCACHED_PORT_OFFSET
        address = f"127.0.0.1:{memcached_port}"
        helpers.append(
            subprocess.Popen(
                memcached_command(memcached, memcached_port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # safe: no threads yet
            )
        )
        env["STOCKDAY_MEMCACHED_SERVERS"] = address
        console.print(f"memcached at {address}")
    else:
        console.print("memcached is not installed: the price cache will always miss")
    updated = settings.model_copy(
        update={
            "aws_endpoint_url": endpoint,
            "memcached_servers": env.get("STOCKDAY_MEMCACHED_SERVERS", settings.memcached_servers),
        }
    )
    return updated, env, helpers


def emulator(
    port: Annotated[int, typer.Option(help="Port of the emulator on 127.0.0.1")] = 4566,
) -> None:
    """Run a local AWS emulator (moto) with the table, queues and bucket created, until Ctrl-C."""
    settings = valid_settings()
    try:
        process = start_emulator(port)
    except EmulatorUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    endpoint = f"http://127.0.0.1:{port}"
    try:
        provision_resources(
            settings.model_copy(update={"aws_endpoint_url": endpoint}), on_emulator=True
        )
        console.print(f"AWS emulator at [bold]{endpoint}[/bold]; run the stack on it with:")
        console.print(
            f"  STOCKDAY_AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=emulator "
            "AWS_SECRET_ACCESS_KEY=emulator stockday up --backend aws"
        )
        stop = StopSignal()
        while not stop.requested and process.poll() is None:
            time.sleep(0.2)
    finally:
        stop_process(process)


def provision() -> None:
    """Create the DynamoDB table, SQS queues and S3 bucket named by the settings, if missing.

    For an emulator or a developer account; production resources come from deploy/.
    """
    provision_resources(valid_settings())

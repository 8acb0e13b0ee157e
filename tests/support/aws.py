"""The AWS adapters' tests on the moto emulator: its client configuration and fresh tables."""

from __future__ import annotations

import uuid
from typing import Any

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_table
from tests.support.ports import HOST, free_port
from tests.support.servers import ServerProcess, shared_moto


def emulator_config(server: ServerProcess | None = None, **options: Any) -> AwsConfig:
    """The configuration of the adapters on ``server``, by default the session's moto."""
    return AwsConfig(region="us-east-1", endpoint_url=(server or shared_moto()).url, **options)


def unreachable_config(**options: Any) -> AwsConfig:
    """Adapters pointed at a loopback port nothing listens on: one quick attempt by default."""
    options = {"timeout_seconds": 0.5, "max_attempts": 1, **options}
    return AwsConfig(region="us-east-1", endpoint_url=f"http://{HOST}:{free_port()}", **options)


def new_stocks_table(config: AwsConfig) -> str:
    """A fresh, empty stocks table (named uniquely) where ``config`` points; its name."""
    table = f"stocks-{uuid.uuid4().hex}"
    client = make_client("dynamodb", config)
    try:
        create_table(client, table)
    finally:
        client.close()
    return table

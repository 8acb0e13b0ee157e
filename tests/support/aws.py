"""Where the AWS adapters' tests send their calls: moto by default, or an emulator a test
setting names, and s3rver; the client configuration and fresh tables there.

A contract suite reaches one service through ``aws_target(service)``: the already-running
endpoint ``STOCKDAY_TEST_<SERVICE>_ENDPOINT`` names (``S3``, ``DYNAMODB``, ``SQS``) when set,
answered by the emulator ``STOCKDAY_TEST_<SERVICE>_EMULATOR`` names (whose known gaps are then
expected to fail, see ``emulator_gap``), else the session's moto server.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from stockday.aws.clients import AwsConfig, make_client
from stockday.aws.provision import create_table, provision
from stockday.runtime.settings import Settings
from tests.support.ports import HOST, free_port
from tests.support.servers import S3RVER_KEY_PAIR, ServerProcess, shared_moto, shared_s3rver

Service = Literal["dynamodb", "s3", "sqs"]
REGION = "us-east-1"
# An emulator named by no setting: none of the known gaps is expected of it.
UNNAMED_EMULATOR = "unnamed"

# Read before moto's placeholder credentials are put into the environment.
_CALLER_KEY_PAIR = (
    os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
    os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
)


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """An emulator serving one AWS service, and the adapters' configuration to reach it."""

    emulator: str
    config: AwsConfig


def endpoint_setting(service: Service) -> str:
    return f"STOCKDAY_TEST_{service.upper()}_ENDPOINT"


def emulator_setting(service: Service) -> str:
    return f"STOCKDAY_TEST_{service.upper()}_EMULATOR"


def target_emulator(service: Service) -> str:
    """The name of the emulator ``aws_target(service)`` reaches (no server is started)."""
    if not os.environ.get(endpoint_setting(service)):
        return "moto"
    return os.environ.get(emulator_setting(service)) or UNNAMED_EMULATOR


def aws_target(service: Service, **options: Any) -> AwsTarget:
    """The endpoint the test setting names for ``service``, else the session's moto."""
    endpoint = os.environ.get(endpoint_setting(service))
    if not endpoint:
        return AwsTarget("moto", emulator_config(**options))
    config = AwsConfig(
        region=REGION, endpoint_url=endpoint, emulator_credentials=_CALLER_KEY_PAIR, **options
    )
    return AwsTarget(target_emulator(service), config)


def s3rver_target(**options: Any) -> AwsTarget:
    """The session's s3rver, with the credentials it checks signatures against."""
    server = shared_s3rver()
    config = AwsConfig(
        region=REGION, endpoint_url=server.url, emulator_credentials=S3RVER_KEY_PAIR, **options
    )
    return AwsTarget("s3rver", config)


def emulator_gap(emulator: str, reason: str) -> pytest.MarkDecorator:
    """Marks a test that ``emulator`` fails for want of a feature AWS has: run there as a
    strict xfail (tests/conftest.py), so it fails loudly the day the emulator gains it."""
    return pytest.mark.emulator_gap(emulator, reason=reason)


def emulator_config(server: ServerProcess | None = None, **options: Any) -> AwsConfig:
    """The configuration of the adapters on ``server``, by default the session's moto."""
    return AwsConfig(region=REGION, endpoint_url=(server or shared_moto()).url, **options)


def unreachable_config(**options: Any) -> AwsConfig:
    """Adapters pointed at a loopback port nothing listens on: one quick attempt by default."""
    options = {"timeout_seconds": 0.5, "max_attempts": 1, **options}
    return AwsConfig(region=REGION, endpoint_url=f"http://{HOST}:{free_port()}", **options)


def new_stocks_table(config: AwsConfig) -> str:
    """A fresh, empty stocks table (named uniquely) where ``config`` points, once ACTIVE."""
    table = f"stocks-{uuid.uuid4().hex}"
    client = make_client("dynamodb", config)
    try:
        create_table(client, table, poll_seconds=1)
    finally:
        client.close()
    return table


def aws_error(code: str, operation: str, status: int = 400, **extra: Any) -> ClientError:
    """The ClientError botocore raises when AWS answers ``code`` to ``operation``."""
    body: Any = {"Error": {"Code": code, "Message": f"{code} (injected)"}, **extra}
    body["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(body, operation)


def fail_aws_operation(monkeypatch: pytest.MonkeyPatch, operation: str, error: Exception) -> None:
    """Every client's ``operation`` (an API name such as "TransactWriteItems") raises ``error``
    from now on, as botocore would for that answer; other calls go to the emulator as usual."""
    real = BaseClient._make_api_call

    def call(client: BaseClient, name: str, params: Any) -> Any:
        if name == operation:
            raise error
        return real(client, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)


def provisioned_settings(emulator: ServerProcess, data_dir: Path) -> Settings:
    """Settings of the AWS backend on ``emulator``, with a table, queues and bucket of their own
    created there; no memcached (a closed port), so no path may need a cache."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        backend="aws",
        data_dir=data_dir,
        aws_endpoint_url=emulator.url,
        aws_region="us-east-1",
        dynamodb_table=f"stocks-{suffix}",
        s3_bucket=f"objects-{suffix}",
        logo_jobs_queue=f"jobs-{suffix}",
        logo_events_queue=f"events-{suffix}",
        memcached_servers="127.0.0.1:1",
    )
    provision(settings, say=lambda _: None)
    return settings

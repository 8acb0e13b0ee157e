"""Shared fixtures. Async tests use AnyIO's pytest plugin on asyncio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stockday.aws.clients import AwsConfig
from tests.support.aws import emulator_config
from tests.support.servers import ServerProcess, shared_memcached, shared_moto, stop_shared_servers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_servers() -> Iterator[None]:
    yield
    stop_shared_servers()


@pytest.fixture(scope="session")
def aws_emulator() -> ServerProcess:
    """The session's moto server; tests isolate themselves by resource name."""
    return shared_moto()


@pytest.fixture
def config(aws_emulator: ServerProcess) -> AwsConfig:
    """The AWS adapters' configuration on the session's moto server."""
    return emulator_config(aws_emulator)


@pytest.fixture(scope="session")
def memcached() -> ServerProcess:
    """The session's real memcached; tests isolate themselves by key prefix."""
    return shared_memcached()

"""Shared fixtures. Async tests use AnyIO's pytest plugin on asyncio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stockday.aws.clients import AwsConfig
from tests.support.aws import emulator_config
from tests.support.servers import ServerProcess, shared_memcached, shared_moto, stop_shared_servers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``emulator_gap(name, reason)`` is a strict xfail where it runs against the
    emulator ``name``: the adapter factory it is parametrized with says which emulator that is."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        emulators = {getattr(param, "emulator", None) for param in params} - {None}
        for mark in item.iter_markers("emulator_gap"):
            if mark.args[0] in emulators:
                reason = f"{mark.args[0]}: {mark.kwargs['reason']}"
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


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

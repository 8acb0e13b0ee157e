"""The operators' password hash in Secrets Manager, on the moto server over HTTP."""

from __future__ import annotations

import uuid

import pytest

from stockday.aws.clients import make_client
from stockday.domain.errors import BackendUnavailable
from stockday.operators.passwords import PasswordHash
from stockday.operators.secretsmanager import KEEP_SECONDS, SecretsManagerCredentials
from tests.support.aws import emulator_config, unreachable_config
from tests.support.operators import OPERATOR_HASH, OPERATOR_PASSWORD

pytestmark = pytest.mark.anyio


def new_secret(value: str) -> str:
    name = f"stockday-operator-{uuid.uuid4().hex}"
    client = make_client("secretsmanager", emulator_config())
    try:
        client.create_secret(Name=name, SecretString=value)
    finally:
        client.close()
    return name


def rotate(name: str, value: str) -> None:
    client = make_client("secretsmanager", emulator_config())
    try:
        client.put_secret_value(SecretId=name, SecretString=value)
    finally:
        client.close()


async def test_reads_the_hash_and_keeps_it_until_it_is_old() -> None:
    name = new_secret(OPERATOR_HASH + "\n")
    now = [0.0]
    credentials = SecretsManagerCredentials(emulator_config(), name, clock=lambda: now[0])
    try:
        found = await credentials.password_hash()
        assert found == OPERATOR_HASH
        assert found is not None
        assert PasswordHash.parse(found).matches(OPERATOR_PASSWORD)
        rotate(name, "scrypt$rotated")
        assert await credentials.password_hash() == OPERATOR_HASH  # kept
        now[0] = KEEP_SECONDS + 1
        assert await credentials.password_hash() == "scrypt$rotated"
    finally:
        await credentials.close()


async def test_a_missing_secret_says_which_setting_names_it() -> None:
    credentials = SecretsManagerCredentials(emulator_config(), "no-such-secret")
    try:
        with pytest.raises(BackendUnavailable) as info:
            await credentials.password_hash()
    finally:
        await credentials.close()
    assert "no-such-secret" in str(info.value)
    assert "STOCKDAY_OPERATOR_SECRET_NAME" in str(info.value)


async def test_an_unreachable_endpoint_is_unavailable_not_a_crash() -> None:
    credentials = SecretsManagerCredentials(unreachable_config(), "anything")
    try:
        with pytest.raises(BackendUnavailable):
            await credentials.password_hash()
    finally:
        await credentials.close()

"""The operators' password hash in AWS Secrets Manager: the secret's string is the hash.

Read on first use and kept for a few minutes, so that a rotated secret takes effect without a
restart and a login costs no AWS call in the steady state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stockday.aws.clients import AwsCalls, AwsConfig, make_client

KEEP_SECONDS = 300.0


class SecretsManagerCredentials:
    """OperatorCredentials from one Secrets Manager secret."""

    def __init__(
        self,
        config: AwsConfig,
        secret_name: str,
        *,
        setting: str = "STOCKDAY_OPERATOR_SECRET_NAME",
        calls: AwsCalls | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = secret_name
        self._setting = setting
        self._owns_calls = calls is None
        self._calls = calls or AwsCalls()
        self._client: Any = make_client("secretsmanager", config)
        self._clock = clock
        self._kept: tuple[float, str | None] | None = None

    async def password_hash(self) -> str | None:
        now = self._clock()
        if self._kept is not None and now - self._kept[0] < KEEP_SECONDS:
            return self._kept[1]
        answer = await self._calls.run_guarded(
            f"operator secret {self._name!r}",
            self._setting,
            self._client.get_secret_value,
            SecretId=self._name,
        )
        value = answer.get("SecretString")
        found = value.strip() if isinstance(value, str) and value.strip() else None
        self._kept = (now, found)
        return found

    async def close(self) -> None:
        self._client.close()
        if self._owns_calls:
            self._calls.close()

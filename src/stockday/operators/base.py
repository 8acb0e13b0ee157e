"""Where the operators' credential comes from: the port, and the adapter for settings."""

from __future__ import annotations

from typing import Protocol

from stockday.domain.errors import BackendUnavailable

__all__ = ["BackendUnavailable", "OperatorCredentials", "StaticCredentials"]


class OperatorCredentials(Protocol):
    async def password_hash(self) -> str | None:
        """The operators' password hash; None when no operator is configured (nobody may log
        in). Raises BackendUnavailable when the store holding it cannot be read."""

    async def close(self) -> None: ...


class StaticCredentials:
    """The hash from settings (STOCKDAY_OPERATOR_PASSWORD_HASH), or none."""

    def __init__(self, password_hash: str | None) -> None:
        self._hash = password_hash

    async def password_hash(self) -> str | None:
        return self._hash

    async def close(self) -> None:
        return None

"""Operator logins: the password check, its failure limit, and the signed session cookie.

The session is a cookie signed with a key derived from the configured password hash
(itsdangerous, HMAC-SHA256, with the time it was issued): no server-side session store, every
replica can check it, and changing the password logs every operator out. The hash is as secret
as a signing key would be (a setting or a Secrets Manager secret), so no second secret is
needed. Failed logins are counted per client by the site's rate limiter, on the store every
replica shares, under the ``logins`` rule: a brake on guessing on top of scrypt's ~0.1 s of CPU
per guess. Like every limit, it fails open when its store does: guesses are then held back only
by the one password check at a time each replica makes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from functools import cache

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from stockday.operators.base import OperatorCredentials
from stockday.operators.passwords import PasswordHash, hash_password
from stockday.ratelimit.limiter import ClientLimiter

COOKIE_NAME = "stockday_operator"
SESSION_PURPOSE = "stockday operator session"
# The limiter's rule counting failed logins (built from the operator_login_* settings).
LOGIN_FAILURES = "logins"


@cache
def _decoy() -> PasswordHash:
    """Checked when no operator is configured, so that a refusal costs the same either way."""
    return PasswordHash.parse(hash_password("decoy password"))


class LoginBlocked(Exception):
    """Too many failed logins from this client lately; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


class OperatorGate:
    """Checks operator passwords, issues and verifies their session cookies."""

    def __init__(
        self,
        open_credentials: Callable[[], OperatorCredentials],
        *,
        session_seconds: int,
        limiter: ClientLimiter,
    ) -> None:
        # Opened on first use: on AWS that imports boto3, which a frontend otherwise never
        # needs, and page views should not wait for it at start-up.
        self._open_credentials = open_credentials
        self._credentials: OperatorCredentials | None = None
        self.session_seconds = session_seconds
        self._limiter = limiter
        # One password check at a time per replica: each takes 32 MiB and a core for ~0.1 s,
        # and a flood of guesses must take neither the replica's memory nor every core.
        self._checking = asyncio.Semaphore(1)

    async def _hash(self) -> PasswordHash | None:
        if self._credentials is None:
            self._credentials = self._open_credentials()
        configured = await self._credentials.password_hash()
        return PasswordHash.parse(configured) if configured else None

    async def log_in(self, password: str, client: str) -> str | None:
        """A session cookie value when ``password`` is the operators' one, else None.

        Raises LoginBlocked (checking nothing) while ``client`` is over its failure limit, and
        BackendUnavailable when the credential cannot be read.
        """
        verdict = await self._limiter.test(LOGIN_FAILURES, client)
        if not verdict.allowed:
            raise LoginBlocked(verdict.retry_after)
        stored = await self._hash()
        async with self._checking:  # off the event loop, one at a time
            matched = await asyncio.to_thread((stored or _decoy()).matches, password)
        if stored is None or not matched:
            await self._limiter.hit(LOGIN_FAILURES, client)
            return None
        await self._limiter.forget(LOGIN_FAILURES, client)
        return _serializer(stored).dumps({"role": "operator"})

    async def is_operator(self, request: Request) -> bool:
        """True when the request carries a valid, unexpired operator session."""
        value = request.cookies.get(COOKIE_NAME)
        if not value or len(value) > 512:
            return False
        stored = await self._hash()
        if stored is None:
            return False
        try:
            payload = _serializer(stored).loads(value, max_age=self.session_seconds)
        except BadSignature:  # also an expired one (SignatureExpired)
            return False
        return isinstance(payload, dict) and payload.get("role") == "operator"

    def set_session(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=self.session_seconds,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    @staticmethod
    def end_session(request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    async def close(self) -> None:
        if self._credentials is not None:
            await self._credentials.close()


def _serializer(stored: PasswordHash) -> URLSafeTimedSerializer:
    key = hashlib.sha256(SESSION_PURPOSE.encode() + b"\0" + stored.key + stored.salt).digest()
    return URLSafeTimedSerializer(key, salt=SESSION_PURPOSE)

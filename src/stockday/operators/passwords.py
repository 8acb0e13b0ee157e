"""Operator password hashes: scrypt (hashlib) with a random salt, compared in constant time.

A hash reads ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key URL-safe base64), so the cost
can be raised later without breaking stored hashes. Only the hash is ever configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
# 2**15 x 8 x 1: 32 MiB and ~0.1 s a guess on one core, for an interactive login.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**15, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
# A configured hash cannot make a login take more than this much memory.
MAX_MEMORY_BYTES = 256 * 1024 * 1024
MAX_PASSWORD_BYTES = 1024


class InvalidPasswordHash(ValueError):
    """A configured operator password hash is not one of ours."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        parts = text.strip().split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise InvalidPasswordHash(
                "an operator password hash reads scrypt$n$r$p$salt$key: make one with "
                "`stockday operator hash-password`"
            )
        try:
            n, r, p = (int(part) for part in parts[1:4])
            salt, key = _decode(parts[4]), _decode(parts[5])
        except (ValueError, binascii.Error) as exc:
            raise InvalidPasswordHash(f"operator password hash is malformed: {exc}") from None
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(key) < 16:
            raise InvalidPasswordHash("operator password hash has invalid scrypt parameters")
        if _memory(n, r, p) > MAX_MEMORY_BYTES:
            raise InvalidPasswordHash("operator password hash asks for too much memory")
        return cls(n=n, r=r, p=p, salt=salt, key=key)

    def __str__(self) -> str:
        return "$".join(
            (SCHEME, str(self.n), str(self.r), str(self.p), _encode(self.salt), _encode(self.key))
        )

    def matches(self, password: str) -> bool:
        """True when ``password`` hashes to this key; constant time in what it compares."""
        candidate = _derive(password, self.salt, self.n, self.r, self.p, len(self.key))
        return hmac.compare_digest(candidate, self.key)


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """A new hash of ``password`` with a fresh salt."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    return str(PasswordHash(n, r, p, salt, _derive(password, salt, n, r, p, KEY_BYTES)))


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # A longer password costs as much as its first MAX_PASSWORD_BYTES: scrypt's input is
    # hashed first anyway, and an unbounded one would let a login request cost what it likes.
    data = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
    return hashlib.scrypt(
        data, salt=salt, n=n, r=r, p=p, maxmem=_memory(n, r, p) + 1024 * 1024, dklen=length
    )


def _memory(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

"""Operator password hashes: scrypt, salted, parsed strictly, compared in constant time."""

from __future__ import annotations

import pytest

from stockday.operators.passwords import InvalidPasswordHash, PasswordHash, hash_password

CHEAP = 2**10


def test_a_hash_matches_its_password_only() -> None:
    stored = PasswordHash.parse(hash_password("right password", n=CHEAP))
    assert stored.matches("right password")
    assert not stored.matches("wrong password")
    assert not stored.matches("")
    assert not stored.matches("right password ")


def test_two_hashes_of_one_password_differ_by_their_salt() -> None:
    first, second = (hash_password("same password", n=CHEAP) for _ in range(2))
    assert first != second
    assert PasswordHash.parse(first).matches("same password")
    assert PasswordHash.parse(second).matches("same password")


def test_the_hash_carries_its_parameters_and_never_the_password() -> None:
    text = hash_password("visible?", n=CHEAP, r=4, p=2)
    scheme, n, r, p, _salt, _key = text.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(CHEAP), "4", "2")
    assert "visible" not in text
    assert str(PasswordHash.parse(text)) == text


def test_the_default_cost_is_a_real_kdf_cost() -> None:
    stored = PasswordHash.parse(hash_password("production cost"))
    assert stored.n >= 2**15
    assert stored.r >= 8


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plaintext password",
        "bcrypt$10$x$y$z$w",
        "scrypt$1000$8$1$c2FsdA$" + "A" * 43,  # n not a power of two
        "scrypt$1024$8$1$!!$" + "A" * 43,  # salt not base64
        "scrypt$1024$8$1$c2FsdA$AAAA",  # key too short
        "scrypt$1073741824$8$1$c2FsdA$" + "A" * 43,  # asks for gigabytes
    ],
)
def test_anything_else_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidPasswordHash):
        PasswordHash.parse(text)


def test_an_empty_password_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")

"""An operator's password for tests, its hash (cheap scrypt parameters), and logging in."""

from __future__ import annotations

import re

import httpx

from stockday.operators.passwords import hash_password

OPERATOR_PASSWORD = "operator password for tests"
# A tenth of the production cost: the tests log in often, and the parameters are in the hash.
OPERATOR_HASH = hash_password(OPERATOR_PASSWORD, n=2**12)

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_token(browser: httpx.AsyncClient, path: str = "/operator/login") -> str:
    """The CSRF token of the form at ``path`` (the client keeps the cookie, as a browser does)."""
    page = await browser.get(path)
    assert page.status_code == 200, page.text
    found = _TOKEN.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def log_in(browser: httpx.AsyncClient, password: str = OPERATOR_PASSWORD) -> httpx.Response:
    """Submit the operator login form; the client keeps the session cookie it sets."""
    token = await csrf_token(browser)
    return await browser.post(
        "/operator/login",
        data={"csrf_token": token, "password": password},
        follow_redirects=False,
    )

"""Bodies above the upload limit, sent as browsers send them (no ``Expect: 100-continue``): a
413 that the client reads every time, through the site's port and straight from a frontend
replica, with a declared length and chunked."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from stockday.frontend import security
from tests.abuse.clients import send_oversize_body
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

BODY_BYTES = 50 * 1024 * 1024
REPEATS = 20


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("through", ["site", "replica"])
def test_an_oversize_form_gets_413_every_time(
    abuse_stack: RunningStack, through: str, chunked: bool
) -> None:
    url = abuse_stack.frontend if through == "site" else abuse_stack.frontend_server
    host, port = address(url)
    outcomes = [
        send_oversize_body(host, port, "/stocks", BODY_BYTES, chunked=chunked)
        for _ in range(REPEATS)
    ]
    assert [(o.status, o.error) for o in outcomes] == [(413, None)] * REPEATS
    # The answer came while the client was still sending, and it went on sending unharmed.
    assert all(o.answered_while_sending for o in outcomes)


@pytest.mark.parametrize("through", ["site", "replica"])
def test_an_oversize_upload_with_a_valid_token_gets_413(
    abuse_stack: RunningStack, through: str
) -> None:
    url = abuse_stack.frontend if through == "site" else abuse_stack.frontend_server
    with httpx.Client(base_url=url, timeout=10) as browser:
        form = browser.get("/stocks/new")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        cookie = f"{security.COOKIE_NAME}={browser.cookies[security.COOKIE_NAME]}"
    host, port = address(url)
    headers = {security.HEADER_NAME: token.group(1), "Cookie": cookie}
    for chunked in (False, True):
        outcome = send_oversize_body(
            host, port, "/uploads", BODY_BYTES, chunked=chunked, headers=headers
        )
        assert (outcome.status, outcome.error) == (413, None)

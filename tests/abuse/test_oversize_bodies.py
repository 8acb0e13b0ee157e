"""Bodies above the upload limit, sent as browsers send them (no ``Expect: 100-continue``): a
413 that the client reads every time, through the site's port and straight from a frontend
replica, with a declared length and chunked."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import psutil
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
    haproxy = psutil.Process(abuse_stack.pid_of("haproxy"))
    memory_before = haproxy.memory_info().rss
    outcomes = [
        send_oversize_body(host, port, "/stocks", BODY_BYTES, chunked=chunked)
        for _ in range(REPEATS)
    ]
    grown = haproxy.memory_info().rss - memory_before
    print(f"HAProxy's memory grew by {grown / 2**20:.1f} MB")
    # HAProxy passes bodies through, or drops them, a buffer at a time: it never holds one.
    assert grown < BODY_BYTES / 5
    assert [(o.status, o.error) for o in outcomes] == [(413, None)] * REPEATS
    # The answer came while the client was still sending, and it went on sending unharmed.
    assert all(o.answered_while_sending for o in outcomes)
    # A page, as the form's visitor expects, whoever answered.
    assert {o.content_type for o in outcomes} == {"text/html"}
    assert all(b"Upload too large" in o.head for o in outcomes)
    # A declared length over the limit never reaches a replica through the site's port.
    from_a_replica = [b"server: uvicorn" in o.head.lower() for o in outcomes]
    assert from_a_replica == [through == "replica" or chunked] * REPEATS


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
        assert outcome.content_type == "application/json"  # what the upload script reads
        limit = abuse_stack.settings.max_upload_bytes
        assert b'{"detail":"upload is larger than the limit of %d bytes"}' % limit in outcome.head

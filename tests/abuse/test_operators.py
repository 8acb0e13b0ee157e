"""Moderation on the real stack (processes behind HAProxy): only an operator deletes or hides,
a hidden stock never comes back from the home page's random pick, and stock-symbol's API
listens on loopback only."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.support.operators import OPERATOR_HASH, OPERATOR_PASSWORD
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SHOWN = re.compile(r'<h1 class="symbol"><a href="/stocks/([A-Z0-9.-]+)">')
HOME_VIEWS = 80


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {
        "STOCKDAY_OPERATOR_PASSWORD_HASH": OPERATOR_HASH,
        # Every page view draws its own pick: what a hide changes shows at once, on every
        # replica, so "never again" can be checked right after it.
        "STOCKDAY_RANDOM_PICK_MAX_AGE_SECONDS": "0",
    }
    running = RunningStack(tmp_path_factory.mktemp("operators") / "data", env=env)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def token_of(browser: httpx.Client, path: str) -> str:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    found = TOKEN.search(page.text)
    assert found is not None
    return found.group(1)


def stock_answer(stack: RunningStack, symbol: str) -> httpx.Response:
    with stack.client(stack.symbol) as api:
        return api.get(f"/api/stocks/{symbol}")


def add_stocks(stack: RunningStack, *symbols: str) -> None:
    with stack.client(stack.symbol) as api:
        for symbol in symbols:
            created = api.post("/api/stocks", json={"symbol": symbol, "name": f"{symbol} Inc."})
            assert created.status_code == 201, created.text


def home_picks(stack: RunningStack, views: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with stack.client(stack.frontend) as visitor:
        for _ in range(views):
            page = visitor.get("/")
            assert page.status_code == 200
            found = SHOWN.search(page.text)
            assert found is not None, page.text
            seen[found.group(1)] += 1
    return seen


def test_anonymous_moderation_is_refused(stack: RunningStack) -> None:
    add_stocks(stack, "ANON")
    with stack.client(stack.frontend) as browser:
        token = token_of(browser, "/stocks/new")  # what every visitor is handed
        for action in ("delete", "hide"):
            refused = browser.post(f"/stocks/ANON/{action}", data={"csrf_token": token})
            assert refused.status_code in (401, 403), action
            assert "text/html" in refused.headers["content-type"]
    answer = stock_answer(stack, "ANON")
    assert answer.status_code == 200
    assert answer.json()["hidden"] is False


def test_an_operator_deletes_one_stock_and_hides_another_for_good(stack: RunningStack) -> None:
    add_stocks(stack, "KEEP", "SPAM", "HOSTILE")
    assert {"KEEP", "SPAM", "HOSTILE"} <= set(home_picks(stack, 60))
    with stack.client(stack.frontend) as browser:
        login_token = token_of(browser, "/operator/login")
        wrong = browser.post(
            "/operator/login", data={"csrf_token": login_token, "password": "guess"}
        )
        assert wrong.status_code == 401
        logged_in = browser.post(
            "/operator/login", data={"csrf_token": login_token, "password": OPERATOR_PASSWORD}
        )
        assert logged_in.status_code == 303
        moderation = browser.get("/operator")
        assert moderation.status_code == 200
        assert ">HOSTILE<" in moderation.text
        token = token_of(browser, "/operator")
        assert browser.post("/stocks/SPAM/delete", data={"csrf_token": token}).status_code == 303
        assert browser.post("/stocks/HOSTILE/hide", data={"csrf_token": token}).status_code == 303
    assert stock_answer(stack, "SPAM").status_code == 404
    hidden = stock_answer(stack, "HOSTILE")
    assert hidden.status_code == 200  # still readable by its symbol
    assert hidden.json()["hidden"] is True
    seen = home_picks(stack, HOME_VIEWS)
    assert "HOSTILE" not in seen
    assert "SPAM" not in seen
    assert "KEEP" in seen


def test_stock_symbol_listens_on_loopback_only(stack: RunningStack) -> None:
    ports = {stack.port_base + 1} | {r.port for r in stack.replicas_of("stock-symbol")}
    listening = [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
    ]
    assert {c.laddr.port for c in listening} == ports
    for connection in listening:
        assert ipaddress.ip_address(connection.laddr.ip).is_loopback, connection.laddr


def test_a_made_up_forwarded_address_does_not_escape_the_failure_limit(
    stack: RunningStack,
) -> None:
    """Last in this module: it leaves the stack's one local client address locked out."""
    limit = stack.settings.operator_login_failures
    after = 2 * len(stack.replicas_of("frontend"))  # enough for every replica to answer
    answers = []
    with stack.client(stack.frontend) as guesser:
        token = token_of(guesser, "/operator/login")
        # Each guess names another address; HAProxy replaces the header with the one it saw,
        # and the replicas share one count, whichever of them a guess reaches.
        for attempt in range(limit + after):
            answer = guesser.post(
                "/operator/login",
                data={"csrf_token": token, "password": f"guess {attempt}"},
                headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
            )
            answers.append(answer.status_code)
    assert answers == [401] * limit + [429] * after

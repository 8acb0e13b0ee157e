"""A local Alpha Vantage: a real HTTP server on 127.0.0.1 answering in Alpha Vantage's format.

Known symbols get data; a few reserved symbols replay Alpha Vantage's failure answers, so one
server covers every error mapping:

=============  =======================================================================
``RATE``       ``Note``: the per-minute call-frequency message (HTTP 200)
``DAILYCAP``   ``Information``: the 25-requests-per-day rate-limit message (HTTP 200)
``PREMIUM``    ``Information``: premium endpoint (not a rate limit)
``NOKEY``      ``Error Message``: the apikey-is-invalid-or-missing message
``TOOMANY``    HTTP 429 with ``Retry-After: 30``
``BOOM``       HTTP 500 with a text body
``HTML``       HTTP 200 with an HTML page instead of JSON
``HOLE``       JSON with a field missing (no price; a bar without its close)
``SLOW``       data, but only after ``slow_seconds`` (released early when the stub stops)
anything else  an empty ``Global Quote`` / an ``Error Message``, as for an unknown symbol
=============  =======================================================================

A request with any other key than ``api_key`` gets the invalid-key ``Information`` message.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.servers import Started

API_KEY = "av-test-key-7f3e9c21"
LAST_DAY = date(2025, 3, 14)  # a Friday: the stub's "latest trading day"
KNOWN = {"IBM": 221.0, "AAPL": 189.0}

DAILY_BARS = 100  # what "compact" answers
WEEKLY_BARS = 150  # Alpha Vantage sends the whole history; more than the provider keeps
MONTHLY_BARS = 80

RATE_NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute "
    "and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would "
    "like to target a higher API call frequency."
)
DAILY_CAP_INFORMATION = (
    "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. "
    "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
    "instantly remove all daily rate limits."
)
PREMIUM_INFORMATION = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any "
    "of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all "
    "premium endpoints"
)
INVALID_KEY_INFORMATION = (
    "Invalid API key. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
MISSING_KEY_ERROR = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)

SERIES_KEYS = {
    "TIME_SERIES_DAILY": (
        "Time Series (Daily)",
        "Daily Prices (open, high, low, close) and Volumes",
    ),
    "TIME_SERIES_WEEKLY": (
        "Weekly Time Series",
        "Weekly Prices (open, high, low, close) and Volumes",
    ),
    "TIME_SERIES_MONTHLY": (
        "Monthly Time Series",
        "Monthly Prices (open, high, low, close) and Volumes",
    ),
}


def _weekdays_until(last: date, count: int) -> list[date]:
    days: list[date] = []
    day = last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def _month_ends_until(last: date, count: int) -> list[date]:
    """Last weekday of each month, the newest month ending at ``last`` (a partial month)."""
    ends = [last]
    first_of_month = last.replace(day=1)
    while len(ends) < count:
        day = first_of_month - timedelta(days=1)
        first_of_month = day.replace(day=1)
        while day.weekday() > 4:
            day -= timedelta(days=1)
        ends.append(day)
    return ends[::-1]


def series_days(function: str) -> list[date]:
    """The dates the stub answers for a series function, oldest first."""
    if function == "TIME_SERIES_DAILY":
        return _weekdays_until(LAST_DAY, DAILY_BARS)
    if function == "TIME_SERIES_WEEKLY":
        return [LAST_DAY - timedelta(weeks=n) for n in range(WEEKLY_BARS)][::-1]
    return _month_ends_until(LAST_DAY, MONTHLY_BARS)


def _close(symbol: str, index: int) -> float:
    return round(KNOWN[symbol] * (1 + 0.04 * math.sin(index / 5.0)), 2)


def _money(value: float) -> str:
    return f"{value:.4f}"


def series_payload(function: str, symbol: str, *, hole: bool = False) -> dict[str, Any]:
    key, information = SERIES_KEYS[function]
    days = series_days(function)
    bars: dict[str, dict[str, str]] = {}
    # Alpha Vantage lists the newest bar first.
    for index in reversed(range(len(days))):
        close = _close(symbol, index)
        bar = {
            "1. open": _money(close * 0.995),
            "2. high": _money(close * 1.01),
            "3. low": _money(close * 0.985),
            "4. close": _money(close),
            "5. volume": str(3_000_000 + 1_000 * index),
        }
        if hole and index == len(days) - 1:
            del bar["4. close"]
        bars[days[index].isoformat()] = bar
    meta = {
        "1. Information": information,
        "2. Symbol": symbol,
        "3. Last Refreshed": LAST_DAY.isoformat(),
    }
    if function == "TIME_SERIES_DAILY":
        meta["4. Output Size"] = "Compact"
        meta["5. Time Zone"] = "US/Eastern"
    else:
        meta["4. Time Zone"] = "US/Eastern"
    return {"Meta Data": meta, key: bars}


def quote_payload(symbol: str, *, hole: bool = False) -> dict[str, Any]:
    price = _close(symbol, DAILY_BARS - 1)
    previous = _close(symbol, DAILY_BARS - 2)
    quote = {
        "01. symbol": symbol,
        "02. open": _money(previous * 1.001),
        "03. high": _money(max(price, previous) * 1.01),
        "04. low": _money(min(price, previous) * 0.99),
        "05. price": _money(price),
        "06. volume": "3099000",
        "07. latest trading day": LAST_DAY.isoformat(),
        "08. previous close": _money(previous),
        "09. change": _money(price - previous),
        "10. change percent": f"{(price - previous) / previous * 100:.4f}%",
    }
    if hole:
        del quote["05. price"]
    return {"Global Quote": quote}


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: dict[str, Any]) -> Reply:
    # Alpha Vantage pretty-prints its JSON.
    return Reply(200, json.dumps(payload, indent=4).encode())


FAILURES: dict[str, Reply] = {
    "RATE": _json({"Note": RATE_NOTE}),
    "DAILYCAP": _json({"Information": DAILY_CAP_INFORMATION}),
    "PREMIUM": _json({"Information": PREMIUM_INFORMATION}),
    "NOKEY": _json({"Error Message": MISSING_KEY_ERROR}),
    "TOOMANY": Reply(429, b"Too Many Requests", "text/plain", {"Retry-After": "30"}),
    "BOOM": Reply(500, b"Internal Server Error", "text/plain"),
    "HTML": Reply(200, b"<html><body>Application Error</body></html>", "text/html"),
}


class AlphaVantageStub(Started):
    """Serves ``http://127.0.0.1:<free port>/query`` from a background thread until stopped."""

    def __init__(self, api_key: str = API_KEY, slow_seconds: float = 10.0) -> None:
        self.api_key = api_key
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, str]] = []
        self._release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/query":
                    self._send(Reply(404, b"not found", "text/plain"))
                    return
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                stub.requests.append(params)
                self._send(stub.answer(params))

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test); nothing to tell it

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        # Port 0: the kernel picks a free port; the socket listens from here on, so requests
        # made before the serving thread runs simply wait in the backlog.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/query"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def answer(self, params: dict[str, str]) -> Reply:
        function = params.get("function", "")
        symbol = params.get("symbol", "").upper()
        if params.get("apikey") != self.api_key:
            return _json({"Information": INVALID_KEY_INFORMATION})
        if function != "GLOBAL_QUOTE" and function not in SERIES_KEYS:
            return _json({"Error Message": f"This API function ({function}) does not exist."})
        scenario = {
            "RATE": lambda: _json({"Note": RATE_NOTE}),
            "DAILYCAP": lambda: _json({"Information": DAILY_CAP_INFORMATION}),
            "PREMIUM": lambda: _json({"Information": PREMIUM_INFORMATION}),
            "NOKEY": lambda: _json({"Error Message": MISSING_KEY_ERROR}),
            "TOOMANY": lambda: Reply(
                429, b"Too Many Requests", "text/plain", {"Retry-After": "30"}
            ),
            "BOOM": lambda: Reply(500, b"Internal Server Error", "text/plain"),
            "HTML": lambda: Reply(200, b"<html><body>Application Error</body></html>", "text/html"),
        }.get(symbol)
        if scenario is not None:
            return scenario()
        if symbol == "SLOW":
            self._release.wait(self.slow_seconds)
            symbol = "IBM"
        hole = symbol == "HOLE"
        if hole:
            symbol = "IBM"
        if symbol not in KNOWN:
            if function == "GLOBAL_QUOTE":
                return _json({"Global Quote": {}})
            return _json(
                {
                    "Error Message": "Invalid API call. Please retry or visit the documentation "
                    f"(https://www.alphavantage.co/documentation/) for {function}."
                }
            )
        if function == "GLOBAL_QUOTE":
            return _json(quote_payload(symbol, hole=hole))
        return _json(series_payload(function, symbol, hole=hole))

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

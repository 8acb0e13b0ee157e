"""Alpha Vantage over HTTP: GLOBAL_QUOTE and the daily, weekly and monthly time series.

Alpha Vantage answers most failures with HTTP 200 and a JSON message instead of data: an
``Error Message`` for an invalid call (usually an unknown symbol), a ``Note`` or ``Information``
when the rate limit is reached, an ``Information`` for an invalid key or a premium-only
function. All of them are mapped to the port's exceptions here.

The API key travels as a query parameter, so it is kept out of every message this module
raises, out of exception chains, and out of httpx's request log lines.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any, NoReturn

import httpx

from stockday.domain.prices import Interval
from stockday.marketdata.base import Bar, ProviderError, Quote, RateLimited, UnknownSymbol

# The most recent bars kept per interval: Alpha Vantage sends 100 daily bars ("compact") but
# its whole history for weekly and monthly, more than any page shows.
SERIES_BARS: dict[Interval, int] = {
    Interval.DAILY: 100,
    Interval.WEEKLY: 104,
    Interval.MONTHLY: 60,
}

_FUNCTIONS: dict[Interval, tuple[str, str]] = {
    Interval.DAILY: ("TIME_SERIES_DAILY", "Time Series (Daily)"),
    Interval.WEEKLY: ("TIME_SERIES_WEEKLY", "Weekly Time Series"),
    Interval.MONTHLY: ("TIME_SERIES_MONTHLY", "Monthly Time Series"),
}
_BAR_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")

# Wordings Alpha Vantage has used for its rate limit over the years ("call frequency is 5 calls
# per minute", "rate limit is 25 requests per day", "a higher API call volume").
_RATE_LIMIT_WORDS = ("rate limit", "call frequency", "api call volume", "calls per minute")
_PER_MINUTE_RETRY_SECONDS = 60
# A daily quota frees up hours later at the earliest; retrying within minutes is pointless.
_PER_DAY_RETRY_SECONDS = 3600

_APIKEY_IN_URL = re.compile(r"(apikey=)[^&\s\"']+", re.IGNORECASE)


class _RedactApiKey(logging.Filter):
    """Masks ``apikey=...`` in httpx's ``HTTP Request: GET <url>`` log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _APIKEY_IN_URL.sub(r"\1***", str(a)) if isinstance(a, httpx.URL | str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _APIKEY_IN_URL.sub(r"\1***", record.msg)
        return True


def _install_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactApiKey) for f in logger.filters):
        logger.addFilter(_RedactApiKey())


class AlphaVantageProvider:
    """Quotes and series from Alpha Vantage's JSON API (``source == "alphavantage"``)."""

    name = "alphavantage"

    def __init__(
        self,
        api_key: str,
        base_url: str,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an Alpha Vantage API key is required")
        self._api_key = api_key
        self._url = base_url
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            headers={"User-Agent": "stockday-stock-price"},
        )
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"AlphaVantageProvider(base_url={self._url!r}, timeout={self._timeout})"

    async def quote(self, symbol: str) -> Quote:
        symbol = symbol.strip().upper()
        body = await self._query("GLOBAL_QUOTE", symbol)
        data = body.get("Global Quote")
        if data is None:
            self._raise_for_message(body, symbol, "GLOBAL_QUOTE")
        if not isinstance(data, dict):
            raise ProviderError(f"Alpha Vantage answered an unreadable quote for {symbol}")
        if not data:
            # Alpha Vantage's answer for a symbol it does not know is an empty quote.
            raise UnknownSymbol(f"Alpha Vantage has no quote for {symbol}")
        price = _price(data, "05. price", symbol)
        previous_close = _price(data, "08. previous close", symbol)
        as_of = _day(data.get("07. latest trading day"), symbol, "07. latest trading day")
        return Quote(
            symbol=symbol,
            price=price,
            previous_close=previous_close,
            as_of=as_of,
            source=self.name,
        )

    async def series(self, symbol: str, interval: Interval) -> list[Bar]:
        symbol = symbol.strip().upper()
        interval = Interval(interval)
        function, key = _FUNCTIONS[interval]
        extra = {"outputsize": "compact"} if interval is Interval.DAILY else {}
        body = await self._query(function, symbol, **extra)
        data = body.get(key)
        if data is None:
            self._raise_for_message(body, symbol, function)
        if not isinstance(data, dict):
            raise ProviderError(f"Alpha Vantage answered an unreadable {interval} series")
        if not data:
            raise UnknownSymbol(f"Alpha Vantage has no {interval} series for {symbol}")
        bars = [_bar(day, fields, symbol) for day, fields in data.items()]
        # Alpha Vantage lists the newest first; the port promises oldest first.
        bars.sort(key=lambda bar: bar.day)
        return bars[-SERIES_BARS[interval] :]

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- HTTP and error mapping ----------------------------------------------------------

    async def _query(self, function: str, symbol: str, **extra: str) -> dict[str, Any]:
        params = {"function": function, "symbol": symbol, "datatype": "json", **extra}
        params["apikey"] = self._api_key
        # Exceptions are re-raised "from None": httpx's messages and chained tracebacks carry
        # the request URL, and with it the API key.
        try:
            response = await self._client.get(self._url, params=params, timeout=self._timeout)
        except httpx.TimeoutException:
            raise ProviderError(
                f"Alpha Vantage did not answer {function} for {symbol} within {self._timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"Alpha Vantage could not be reached for {function} ({type(exc).__name__})"
            ) from None
        if response.status_code == 429:
            raise RateLimited(
                "Alpha Vantage answered HTTP 429 (too many requests)",
                _retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise ProviderError(
                f"Alpha Vantage answered HTTP {response.status_code} to {function} for {symbol}"
            )
        try:
            body = response.json()
        except ValueError:
            content_type = response.headers.get("content-type", "no content type")
            raise ProviderError(
                f"Alpha Vantage answered {function} with something that is not JSON "
                f"({content_type})"
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(f"Alpha Vantage answered {function} with unexpected JSON")
        return body

    def _raise_for_message(self, body: dict[str, Any], symbol: str, function: str) -> NoReturn:
        """Raise the exception that Alpha Vantage's message instead of data stands for."""
        error = body.get("Error Message")
        if error is not None:
            text = self._clean(error)
            if "apikey" in text.lower():
                raise ProviderError(f"Alpha Vantage refused the API key: {text}")
            raise UnknownSymbol(f"Alpha Vantage knows no symbol {symbol}: {text}")
        for key in ("Note", "Information"):
            message = body.get(key)
            if message is None:
                continue
            text = self._clean(message)
            lowered = text.lower()
            if any(words in lowered for words in _RATE_LIMIT_WORDS):
                daily_only = "per day" in lowered and "per minute" not in lowered
                retry = _PER_DAY_RETRY_SECONDS if daily_only else _PER_MINUTE_RETRY_SECONDS
                raise RateLimited(f"Alpha Vantage rate limit reached: {text}", retry)
            raise ProviderError(f"Alpha Vantage refused {function}: {text}")
        raise ProviderError(
            f"Alpha Vantage answered {function} for {symbol} without data "
            f"(keys: {', '.join(sorted(map(str, body))) or 'none'})"
        )

    def _clean(self, message: object) -> str:
        """The provider's message, one line, without our key should it ever echo it."""
        text = " ".join(str(message).split())
        return text.replace(self._api_key, "***")


def _price(data: dict[str, Any], field: str, symbol: str) -> float:
    try:
        value = float(data[field])
    except (KeyError, TypeError, ValueError):
        raise ProviderError(f"Alpha Vantage's quote for {symbol} has no usable {field!r}") from None
    if not value > 0:
        raise ProviderError(f"Alpha Vantage's quote for {symbol} has {field!r} = {value}")
    return value


def _day(value: object, symbol: str, field: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ProviderError(f"Alpha Vantage's answer for {symbol} has no usable {field!r}")


def _bar(day: object, fields: object, symbol: str) -> Bar:
    try:
        if not isinstance(fields, dict):
            raise TypeError("bar is not an object")
        open_, high, low, close, volume = (fields[name] for name in _BAR_FIELDS)
        return Bar(
            day=date.fromisoformat(str(day)),
            open=float(open_),
            high=float(high),
            low=float(low),
            close=float(close),
            volume=int(float(volume)),
        )
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            f"Alpha Vantage's series for {symbol} has an unreadable bar for {str(day)[:20]!r}"
        ) from None


def _retry_after(value: str | None) -> int:
    if value is not None and value.strip().isdigit():
        return max(1, int(value))
    return _PER_MINUTE_RETRY_SECONDS

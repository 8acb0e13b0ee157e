"""AlphaVantageProvider against the local stub: requests, parsing and every error mapping."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Awaitable, Callable
from datetime import date

import httpx
import pytest

from stockday.domain.prices import Interval
from stockday.marketdata.alphavantage import AlphaVantageProvider
from stockday.marketdata.base import ProviderError, RateLimited, UnknownSymbol
from tests.marketdata import alphavantage_stub as stub_data
from tests.marketdata.alphavantage_stub import API_KEY, LAST_DAY, AlphaVantageStub

pytestmark = pytest.mark.anyio

Call = Callable[[AlphaVantageProvider, str], Awaitable[object]]


async def _quote(provider: AlphaVantageProvider, symbol: str) -> object:
    return await provider.quote(symbol)


async def _daily(provider: AlphaVantageProvider, symbol: str) -> object:
    return await provider.series(symbol, Interval.DAILY)


async def _monthly(provider: AlphaVantageProvider, symbol: str) -> object:
    return await provider.series(symbol, Interval.MONTHLY)


CALLS = [pytest.param(_quote, id="quote"), pytest.param(_daily, id="daily")]


async def test_quote_is_parsed_from_global_quote(
    av_provider: AlphaVantageProvider, av_stub: AlphaVantageStub
) -> None:
    quote = await av_provider.quote("ibm")
    expected = stub_data.quote_payload("IBM")["Global Quote"]
    assert quote.symbol == "IBM"
    assert quote.price == float(expected["05. price"])
    assert quote.previous_close == float(expected["08. previous close"])
    assert quote.as_of == LAST_DAY
    assert quote.source == "alphavantage"
    assert av_stub.requests == [
        {"function": "GLOBAL_QUOTE", "symbol": "IBM", "datatype": "json", "apikey": API_KEY}
    ]


@pytest.mark.parametrize(
    ("interval", "function", "kept"),
    [
        (Interval.DAILY, "TIME_SERIES_DAILY", 100),
        (Interval.WEEKLY, "TIME_SERIES_WEEKLY", 104),
        (Interval.MONTHLY, "TIME_SERIES_MONTHLY", 60),
    ],
)
async def test_series_are_sorted_oldest_first_and_keep_the_newest_bars(
    av_provider: AlphaVantageProvider,
    av_stub: AlphaVantageStub,
    interval: Interval,
    function: str,
    kept: int,
) -> None:
    bars = await av_provider.series("IBM", interval)
    days = stub_data.series_days(function)
    assert len(days) >= kept
    assert [bar.day for bar in bars] == days[-kept:]
    newest = stub_data.series_payload(function, "IBM")[stub_data.SERIES_KEYS[function][0]]
    fields = newest[LAST_DAY.isoformat()]
    assert bars[-1].day == LAST_DAY
    assert bars[-1].open == float(fields["1. open"])
    assert bars[-1].high == float(fields["2. high"])
    assert bars[-1].low == float(fields["3. low"])
    assert bars[-1].close == float(fields["4. close"])
    assert bars[-1].volume == int(fields["5. volume"])
    assert av_stub.requests[-1]["function"] == function


async def test_daily_asks_for_the_compact_output(
    av_provider: AlphaVantageProvider, av_stub: AlphaVantageStub
) -> None:
    await av_provider.series("IBM", Interval.DAILY)
    assert av_stub.requests[-1]["outputsize"] == "compact"


@pytest.mark.parametrize(
    ("symbol", "retry_after", "says"),
    [
        pytest.param("RATE", 60, "call frequency", id="per-minute-note"),
        pytest.param("DAILYCAP", 3600, "25 requests per day", id="daily-information"),
    ],
)
@pytest.mark.parametrize("call", CALLS)
async def test_rate_limit_answers(
    av_provider: AlphaVantageProvider, call: Call, symbol: str, retry_after: int, says: str
) -> None:
    with pytest.raises(RateLimited) as info:
        await call(av_provider, symbol)
    assert info.value.retry_after_seconds == retry_after
    assert says in str(info.value)


async def test_http_429_is_rate_limited_with_its_retry_after(
    av_provider: AlphaVantageProvider,
) -> None:
    with pytest.raises(RateLimited) as info:
        await av_provider.quote("TOOMANY")
    assert info.value.retry_after_seconds == 30


@pytest.mark.parametrize("call", CALLS)
async def test_unknown_symbol(av_provider: AlphaVantageProvider, call: Call) -> None:
    with pytest.raises(UnknownSymbol):
        await call(av_provider, "NOSUCH")


async def test_error_message_about_the_key_is_a_provider_error(
    av_provider: AlphaVantageProvider,
) -> None:
    with pytest.raises(ProviderError) as info:
        await av_provider.series("NOKEY", Interval.DAILY)
    assert "apikey is invalid or missing" in str(info.value)


@pytest.mark.parametrize("call", CALLS)
async def test_invalid_key_is_a_provider_error_with_the_providers_message(
    av_stub: AlphaVantageStub, call: Call
) -> None:
    provider = AlphaVantageProvider(api_key="wrong-key-0000", base_url=av_stub.url, timeout=2.0)
    try:
        with pytest.raises(ProviderError) as info:
            await call(provider, "IBM")
    finally:
        await provider.close()
    assert not isinstance(info.value, RateLimited)
    assert "Invalid API key" in str(info.value)
    assert "wrong-key-0000" not in str(info.value)


async def test_premium_information_is_not_mistaken_for_a_rate_limit(
    av_provider: AlphaVantageProvider,
) -> None:
    with pytest.raises(ProviderError) as info:
        await av_provider.quote("PREMIUM")
    assert not isinstance(info.value, RateLimited)
    assert "premium endpoint" in str(info.value)


@pytest.mark.parametrize("call", CALLS)
async def test_http_500(av_provider: AlphaVantageProvider, call: Call) -> None:
    with pytest.raises(ProviderError, match="HTTP 500"):
        await call(av_provider, "BOOM")


@pytest.mark.parametrize("call", CALLS)
async def test_non_json_body(av_provider: AlphaVantageProvider, call: Call) -> None:
    with pytest.raises(ProviderError, match="not JSON"):
        await call(av_provider, "HTML")


async def test_missing_fields(av_provider: AlphaVantageProvider) -> None:
    with pytest.raises(ProviderError, match=r"05\. price"):
        await av_provider.quote("HOLE")
    with pytest.raises(ProviderError, match="unreadable bar"):
        await av_provider.series("HOLE", Interval.WEEKLY)


async def test_slow_answer_times_out(av_stub: AlphaVantageStub) -> None:
    provider = AlphaVantageProvider(api_key=API_KEY, base_url=av_stub.url, timeout=0.3)
    try:
        # The stub holds the answer for 10 s: only the client's timeout raises this error.
        with pytest.raises(ProviderError, match=r"within 0\.3 s"):
            await provider.quote("SLOW")
    finally:
        await provider.close()


async def test_unreachable_provider() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more: the connection is refused.
    provider = AlphaVantageProvider(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/query", timeout=2.0
    )
    try:
        with pytest.raises(ProviderError, match="could not be reached"):
            await provider.quote("IBM")
    finally:
        await provider.close()


FAILING = ["RATE", "DAILYCAP", "TOOMANY", "NOSUCH", "NOKEY", "PREMIUM", "BOOM", "HTML", "HOLE"]


@pytest.mark.parametrize("call", [*CALLS, pytest.param(_monthly, id="monthly")])
async def test_api_key_never_appears_in_errors(av_stub: AlphaVantageStub, call: Call) -> None:
    provider = AlphaVantageProvider(api_key=API_KEY, base_url=av_stub.url, timeout=0.3)
    raised: list[BaseException] = []
    try:
        for symbol in [*FAILING, "SLOW"]:
            try:
                await call(provider, symbol)
            except (ProviderError, UnknownSymbol) as exc:
                raised.append(exc)
    finally:
        await provider.close()
    assert len(raised) == len(FAILING) + 1
    for error in raised:
        # What a log line with a traceback would show, chained exceptions included.
        shown = "".join(traceback.format_exception(error)) + repr(error) + repr(error.args)
        assert API_KEY not in shown
    assert API_KEY not in repr(provider)


async def test_api_key_is_masked_in_httpx_request_logs(
    av_provider: AlphaVantageProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        await av_provider.quote("IBM")
        with pytest.raises(ProviderError):
            await av_provider.quote("BOOM")
    assert "HTTP Request" in caplog.text
    assert "apikey=***" in caplog.text
    assert API_KEY not in caplog.text


async def test_a_given_client_is_used_and_left_open(av_stub: AlphaVantageStub) -> None:
    async with httpx.AsyncClient() as client:
        provider = AlphaVantageProvider(
            api_key=API_KEY, base_url=av_stub.url, timeout=2.0, client=client
        )
        quote = await provider.quote("AAPL")
        await provider.close()
        assert not client.is_closed
        assert quote.as_of == date(2025, 3, 14)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="API key"):
        AlphaVantageProvider(api_key="", base_url="http://127.0.0.1:1/query", timeout=1.0)

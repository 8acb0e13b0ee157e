"""The typed client of the stock-symbol JSON API, speaking its contract models."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from stockday.contracts.stocks import (
    DeadLetters,
    LogoUpdate,
    RandomPicks,
    RecentStocks,
    Redriven,
    StockCreate,
    StockList,
    StockOut,
    StockWithSeriesOut,
    UploadOut,
    Visibility,
)
from stockday.domain.prices import Interval
from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.runtime.resilience import Breaker, BreakerOpen, retry_idempotent

# Form fields of the add-stock form that an API error can be attached to ("" = the whole form).
FORM_FIELDS = ("symbol", "name", "upload_id")
GENERAL = ""

M = TypeVar("M", bound=BaseModel)


class SymbolServiceUnavailable(Exception):
    """stock-symbol could not be reached, timed out, failed (5xx) or answered something unusable."""

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # A human-readable sentence from stock-symbol itself, when its 5xx answer carried one.
        self.detail = detail


class Refused(Exception):
    """stock-symbol refused a request (4xx); ``messages`` maps form fields to error sentences."""

    def __init__(self, status: int, messages: dict[str, str]) -> None:
        super().__init__(f"{status}: {messages}")
        self.status = status
        self.messages = messages


class AlreadyExists(Refused):
    """The symbol is taken (409); ``existing`` is the stock that holds it."""

    def __init__(self, message: str, existing: StockOut | None) -> None:
        super().__init__(409, {"symbol": message})
        self.existing = existing


def problem_messages(detail: object) -> dict[str, str]:
    """Map an error ``detail`` of stock-symbol onto the add-stock form's fields.

    stock-symbol answers one sentence that names the field first ("symbol 'x' is not a
    ticker...", "name must not be empty", "upload ... does not exist"), or FastAPI's list of
    validation errors, each with a ``loc`` ending in the field name.
    """
    if isinstance(detail, list):
        messages: dict[str, str] = {}
        for item in detail:
            if not isinstance(item, dict):
                continue
            loc = item.get("loc") or []
            name = str(loc[-1]) if isinstance(loc, list) and loc else ""
            message = str(item.get("msg") or "invalid value")
            if name in FORM_FIELDS:
                messages.setdefault(name, message)
            else:
                messages.setdefault(GENERAL, f"{name}: {message}" if name else message)
        return messages or {GENERAL: "the request was refused"}
    text = str(detail).strip() if detail else ""
    if not text:
        return {GENERAL: "the request was refused"}
    first_word = text.split(maxsplit=1)[0].lower()
    field = {"symbol": "symbol", "name": "name", "upload": "upload_id"}.get(first_word, GENERAL)
    return {field: text}


def _detail_of(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A 2xx we cannot read is as useless to a visitor as no answer at all.
        raise SymbolServiceUnavailable(
            f"unusable answer from stock-symbol ({exc.error_count()} errors)"
        ) from exc


def _unexpected(response: httpx.Response) -> SymbolServiceUnavailable:
    return SymbolServiceUnavailable(
        f"unexpected status {response.status_code} from stock-symbol "
        f"{response.request.method} {response.request.url.path}"
    )


# Five failures in a row open the breaker for five seconds: pages then answer "unavailable" at
# once instead of each waiting for a timeout.
BREAKER_THRESHOLD = 5
BREAKER_SECONDS = 5.0


class _ServerError(Exception):
    """stock-symbol answered 5xx: a failure for its breaker."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class SymbolClient:
    """Calls stock-symbol with a timeout on every request; raises instead of answering 5xx."""

    def __init__(self, http: httpx.AsyncClient, *, timeout_seconds: float) -> None:
        self._http = http
        # Passed on every call, so an injected client honours the configured timeout too.
        self._timeout = httpx.Timeout(timeout_seconds)
        self._breaker = Breaker(
            "stock-symbol", threshold=BREAKER_THRESHOLD, ttl_seconds=BREAKER_SECONDS
        )

    async def _call(
        self, method: str, url: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One call under the breaker; an idempotent one is tried once more if the connection
        failed (a replica killed mid-request): GET, DELETE, a logo change (it sets a state), and
        creates, which carry an Idempotency-Key. Uploads are not retried: a repeat would store a
        second copy.
        """

        async def once() -> httpx.Response:
            return await self._http.request(method, url, timeout=self._timeout, **kwargs)

        try:
            async with self._breaker.guard():
                response = await (retry_idempotent(once) if idempotent else once())
                if response.status_code >= 500:
                    raise _ServerError(response)
        except BreakerOpen as exc:
            raise SymbolServiceUnavailable(
                f"stock-symbol {method} {url} not called: {exc}"
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, timed out, protocol error
            raise SymbolServiceUnavailable(
                f"stock-symbol {method} {url} failed: {type(exc).__name__}"
            ) from exc
        except _ServerError as error:
            detail = _detail_of(error.response)
            raise SymbolServiceUnavailable(
                f"stock-symbol {method} {url} answered {error.response.status_code}",
                detail=detail if isinstance(detail, str) else None,
            ) from None
        return response

    async def ping(self) -> None:
        """Raise unless stock-symbol answers its liveness probe.

        Outside the breaker: readiness must see stock-symbol as it is, and the failed probes
        of a start-up (stock-symbol not listening yet) must not open the breaker for the
        first page views.
        """
        try:
            response = await self._http.get("/api/ping", timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise SymbolServiceUnavailable(
                f"stock-symbol GET /api/ping failed: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise _unexpected(response)

    async def random_picks(self, count: int) -> list[StockOut]:
        """``count`` independent uniformly random stocks with prices; empty when there are none."""
        response = await self._call("GET", "/api/stocks/random-picks", params={"count": count})
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(RandomPicks, response).items

    async def get_stock(
        self, symbol: str, *, series: Interval | None = None
    ) -> StockWithSeriesOut | None:
        """One stock (with the ``series`` interval, if given), or None when there is none.

        None too when the symbol cannot be a ticker.
        """
        path = self._stock_path(symbol)
        if path is None:
            return None
        params = {"series": series} if series else None
        response = await self._call("GET", path, params=params)
        if response.status_code in (404, 422):
            return None
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(StockWithSeriesOut, response)

    async def delete_stock(self, symbol: str) -> bool:
        """Delete a stock; False when there was no such stock."""
        path = self._stock_path(symbol)
        if path is None:
            return False
        response = await self._call("DELETE", path)
        if response.status_code in (404, 422):
            return False
        if response.status_code != 204:
            raise _unexpected(response)
        return True

    async def set_hidden(self, symbol: str, hidden: bool) -> StockOut | None:
        """Hide a stock from the random pick and the listing, or show it; None when unknown."""
        path = self._stock_path(symbol)
        if path is None:
            return None
        body = Visibility(hidden=hidden).model_dump(mode="json")
        response = await self._call("PUT", f"{path}/visibility", json=body)
        if response.status_code in (404, 422):
            return None
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(StockOut, response)

    async def recent_stocks(self, limit: int = 50) -> list[StockOut]:
        """The stocks added last, newest first, hidden ones included."""
        response = await self._call("GET", "/api/stocks/recent", params={"limit": limit})
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(RecentStocks, response).items

    async def dead_letters(self) -> DeadLetters:
        response = await self._call("GET", "/api/dead-letters")
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(DeadLetters, response)

    async def redrive(self, queue: str) -> int | None:
        """Re-drive a queue's dead letters; how many moved, None when there is no such queue."""
        path = f"/api/dead-letters/{quote(queue, safe='')}/redrive"
        # Not retried: a repeat is harmless but would report a second, smaller count.
        response = await self._call("POST", path, idempotent=False)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(Redriven, response).moved

    @staticmethod
    def _stock_path(symbol: str) -> str | None:
        """The API path of a stock, or None when ``symbol`` cannot be a ticker (no call made).

        The domain's rule, as stock-symbol applies it: "ß" is no symbol, never SS. Canonical,
        so the lower-case segment "random" does not name stock-symbol's random pick.
        """
        try:
            return f"/api/stocks/{quote(normalize_symbol(symbol.strip()), safe='')}"
        except InvalidStock:
            return None

    async def list_stocks(self, *, cursor: str | None = None, limit: int = 50) -> StockList:
        """One page of stocks ordered by symbol; raises Refused for a cursor it rejects."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await self._call("GET", "/api/stocks", params=params)
        if response.status_code in (400, 422):
            raise Refused(response.status_code, {GENERAL: "that page link is not valid"})
        if response.status_code != 200:
            raise _unexpected(response)
        return _parse(StockList, response)

    async def create_stock(
        self, *, symbol: str, name: str, upload_id: str | None, idempotency_key: str
    ) -> StockOut:
        """Create a stock; raises AlreadyExists (409) or Refused (422 and other 4xx)."""
        # Not validated here: stock-symbol's refusal names the field, and the form shows it.
        request = StockCreate.model_construct(symbol=symbol, name=name, upload_id=upload_id or None)
        response = await self._call(
            "POST",
            "/api/stocks",
            json=request.model_dump(mode="json", exclude_none=True),
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code == 201:
            return _parse(StockOut, response)
        if response.status_code == 409:
            raise self._exists(response)
        if 400 <= response.status_code < 500:
            raise Refused(response.status_code, problem_messages(_detail_of(response)))
        raise _unexpected(response)

    @staticmethod
    def _exists(response: httpx.Response) -> AlreadyExists:
        detail = _detail_of(response)
        message = detail if isinstance(detail, str) and detail else "that symbol already exists"
        existing: StockOut | None = None
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("stock"), dict):
                existing = StockOut.model_validate(body["stock"])
        except ValueError:  # the existing stock is a nicety; the 409 stands without it
            existing = None
        return AlreadyExists(message, existing)

    async def forward_upload(self, body: bytes, content_type: str) -> httpx.Response:
        """Send a browser's multipart body to ``POST /api/uploads`` unchanged; any 2xx-4xx back."""
        return await self._call(
            "POST",
            "/api/uploads",
            idempotent=False,
            content=body,
            headers={"Content-Type": content_type},
        )

    async def upload_file(self, filename: str, data: bytes, content_type: str) -> str:
        """Upload one logo file and return its upload id; raises Refused when it is rejected."""
        response = await self._call(
            "POST", "/api/uploads", idempotent=False, files={"file": (filename, data, content_type)}
        )
        if response.status_code == 201:
            return _parse(UploadOut, response).upload_id
        if 400 <= response.status_code < 500:
            detail = _detail_of(response)
            messages = problem_messages(detail)
            # Whatever the API calls it, a rejected upload is the logo field's problem.
            text = "; ".join(messages.values())
            raise Refused(response.status_code, {"upload_id": text})
        raise _unexpected(response)

    async def discard_upload(self, upload_id: str) -> bool:
        """Delete an upload no stock links (``DELETE /api/uploads/{id}``); False if linked."""
        response = await self._call("DELETE", f"/api/uploads/{quote(upload_id, safe='')}")
        if response.status_code == 204:
            return True
        if response.status_code in (404, 409, 422):
            return False
        raise _unexpected(response)

    async def change_logo(self, symbol: str, update: LogoUpdate) -> None:
        """Link a logo upload or record its resize result (``PUT /api/stocks/{symbol}/logo``).

        Raises Refused (any 4xx, with stock-symbol's answer as its one message) or
        SymbolServiceUnavailable (unreachable, 5xx, or any other answer).
        """
        path = f"/api/stocks/{quote(symbol, safe='')}/logo"
        body = update.model_dump(mode="json", exclude_none=True)
        response = await self._call("PUT", path, json=body)
        if response.status_code == 200:
            return
        if 400 <= response.status_code < 500:
            raise Refused(response.status_code, {GENERAL: response.text[:200]})
        raise _unexpected(response)

    async def open_logo(self, path: str) -> httpx.Response:
        """Start streaming ``GET /api/logos/{path}``; the caller must close the response."""
        url = "/api/logos/" + "/".join(quote(part, safe="") for part in path.split("/"))
        request = self._http.build_request("GET", url, timeout=self._timeout)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise SymbolServiceUnavailable(f"stock-symbol GET {url} failed: {exc!r}") from exc
        if response.status_code >= 500:
            await response.aclose()
            raise _unexpected(response)
        return response

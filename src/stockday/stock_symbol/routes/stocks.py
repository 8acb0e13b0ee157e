"""Stocks: create, read, list, random picks, logo state, delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from stockday.contracts.stocks import (
    LogoUpdate,
    RandomPicks,
    StockCreate,
    StockList,
    StockOut,
    StockWithSeriesOut,
)
from stockday.domain.prices import Interval
from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.runtime.web.errors import error_response
from stockday.runtime.web.params import SymbolPath
from stockday.stock_symbol.deps import StockServiceDep
from stockday.stock_symbol.errors import documented
from stockday.stocks.base import StockExists, StockNotFound

# Most random picks one call answers (the frontend prefetches a small batch per worker).
MAX_RANDOM_PICKS = 100
# A stock version as an entity tag, strong or weak, or bare: "3", W/"3", 3. ASCII digits only.
IF_MATCH_PATTERN = r'^(?:W/)?(?:"[0-9]{1,18}"|[0-9]{1,18})$'
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


def _version_tag_schema(schema: dict[str, Any]) -> None:
    # A header is text when sent and absent otherwise: never the JSON null of an optional field.
    schema.pop("anyOf", None)
    schema.update({"type": "string", "pattern": IF_MATCH_PATTERN})


IfMatchHeader = Annotated[
    str | None,
    Header(
        description="Change only if the stock is at this version (412 otherwise).",
        json_schema_extra=_version_tag_schema,
    ),
]

SeriesQuery = Annotated[
    Interval | None,
    Query(description="Also answer this price series (daily, weekly or monthly) as `series`."),
]

router = APIRouter()


@router.post(
    "/api/stocks",
    status_code=201,
    response_model=StockOut,
    responses=documented(400, 409, 422, 503),
)
async def create_stock(
    body: StockCreate,
    stocks: StockServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> StockOut | JSONResponse:
    """Create a stock; 409 when the symbol exists, unless this is a retry of the same create."""
    try:
        return await stocks.create_stock(body.symbol, body.name, body.upload_id, idempotency_key)
    except StockExists as exists:
        existing = await stocks.present(exists.existing, with_price=False)
        return error_response(
            409,
            f"stock {exists.existing.symbol} already exists",
            stock=existing.model_dump(mode="json"),
        )


@router.get("/api/stocks", response_model=StockList, responses=documented(422))
async def list_stocks(
    stocks: StockServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> StockList:
    return await stocks.list_stocks(limit=limit, cursor=cursor)


# The answers of the routes below are JSONResponses built from JSON-ready bodies: FastAPI's
# validation of the response model would dump and re-validate every point of a series.
# Their shapes are still the declared models (schemathesis checks them).


@router.get("/api/stocks/random", response_model=StockWithSeriesOut, responses=documented(404, 422))
async def random_stock(stocks: StockServiceDep, series: SeriesQuery = None) -> JSONResponse:
    """A uniformly random stock with its price (and a price series when asked for)."""
    body = await stocks.random(series)
    if body is None:
        return error_response(404, "no stocks yet: add one with POST /api/stocks")
    return JSONResponse(body)


@router.get("/api/stocks/random-picks", response_model=RandomPicks, responses=documented(422))
async def random_picks(
    stocks: StockServiceDep,
    count: Annotated[int, Query(ge=1, le=MAX_RANDOM_PICKS)] = 1,
) -> JSONResponse:
    """``count`` independent uniformly random picks, each with its price (no series).

    The same stock may come more than once: each item is a draw of its own, so a caller
    may serve them one by one as separate random picks. Empty when there are no stocks.
    """
    return JSONResponse(await stocks.random_picks(count))


@router.get(
    "/api/stocks/{symbol}", response_model=StockWithSeriesOut, responses=documented(404, 422)
)
async def get_stock(
    symbol: SymbolPath, stocks: StockServiceDep, series: SeriesQuery = None
) -> JSONResponse:
    """One stock with its price (and a price series when asked for)."""
    return JSONResponse(await stocks.stock(symbol, series))


@router.put(
    "/api/stocks/{symbol}/logo",
    response_model=StockOut,
    responses=documented(400, 404, 409, 412, 422, 503),
)
async def change_logo(
    symbol: SymbolPath,
    body: LogoUpdate,
    stocks: StockServiceDep,
    if_match: IfMatchHeader = None,
) -> StockOut:
    """Link a new logo upload (state pending), or record the resize result."""
    expected = parse_if_match(if_match)  # refused when malformed, whatever the state
    return await stocks.change_logo(symbol, body, expected if body.state == "pending" else None)


@router.delete("/api/stocks/{symbol}", status_code=204, responses=documented(404, 422))
async def delete_stock(symbol: SymbolPath, stocks: StockServiceDep) -> Response:
    if not await stocks.delete(symbol):
        raise StockNotFound(normalize_symbol(symbol))
    return Response(status_code=204)


def parse_if_match(value: str | None) -> int | None:
    """The stock version an If-Match header names (quoted, weak or bare), or None."""
    if value is None:
        return None
    if not _IF_MATCH.fullmatch(value):
        raise InvalidStock('If-Match must be a stock version number, such as "3"')
    return int(value.removeprefix("W/").strip('"'))

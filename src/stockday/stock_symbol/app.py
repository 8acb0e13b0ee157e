"""stock-symbol: the JSON service that owns the stock data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from stockday.contracts.stocks import (
    DirectUploadOut,
    LogoUpdate,
    RandomPicks,
    StockCreate,
    StockList,
    StockOut,
    StockWithSeriesOut,
    UploadOut,
)
from stockday.domain.prices import Interval
from stockday.domain.stocks import InvalidStock, InvalidTransition, Stock
from stockday.logos.images import ImageTooLarge, RejectedImage
from stockday.runtime import composition
from stockday.runtime.logs import configure_logging
from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import configure_tracing
from stockday.runtime.web.errors import ErrorOut, error_response, install_error_handlers
from stockday.runtime.web.observability import install_observability
from stockday.stock_symbol.pricing import PriceLookup, PriceSeries
from stockday.stock_symbol.service import (
    JobNotQueued,
    PreconditionFailed,
    StockService,
    UnknownUpload,
)
from stockday.stocks.base import StockExists, StockNotFound, StockRepository, VersionConflict

UPLOAD_CHUNK = 64 * 1024
# Long enough to pick a file on a slow connection, short enough not to be worth stealing.
DIRECT_UPLOAD_SECONDS = 900
# Prices of one listing page (or batch of random picks) are looked up with bounded concurrency.
LIST_PRICE_CONCURRENCY = 8
# Most random picks one call answers (the frontend prefetches a small batch per worker).
MAX_RANDOM_PICKS = 100


ERROR_MEANINGS = {
    400: "The body could not be parsed (malformed JSON or multipart).",
    404: "No such stock (or logo).",
    409: "Conflict: the symbol exists, or the logo transition does not apply.",
    412: "If-Match names a version that is no longer current.",
    413: "The upload is larger than the byte limit.",
    415: "The upload is not a supported image format.",
    422: "Invalid input: the detail says which and why.",
    503: "A dependency (the queue) is unavailable; retrying is safe.",
}
SeriesQuery = Annotated[
    Interval | None,
    Query(description="Also answer this price series (daily, weekly or monthly) as `series`."),
]


def create_app(
    settings: Settings | None = None,
    *,
    price_client: httpx.AsyncClient | None = None,
    repository: StockRepository | None = None,
) -> FastAPI:
    """Wire adapters from settings and build the app (adapters are created eagerly)."""
    settings = settings or get_settings()
    repository = repository or composition.stock_repository(settings)
    jobs = composition.message_queue(settings, settings.logo_jobs_queue)
    objects = composition.object_store(settings)
    cache = composition.cache(settings)
    owns_client = price_client is None
    client = price_client or httpx.AsyncClient(
        base_url=settings.price_url,
        timeout=settings.http_timeout_seconds,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    service = StockService(
        repository=repository,
        jobs=jobs,
        objects=objects,
        max_upload_bytes=settings.max_upload_bytes,
        max_upload_pixels=settings.max_upload_pixels,
    )
    prices = PriceLookup(
        cache=cache,
        price_client=client,
        repository=repository,
        ttl_seconds=settings.price_cache_ttl_seconds,
        persist_interval_seconds=settings.price_persist_interval_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_client:
            await client.aclose()
        await repository.close()
        await jobs.close()
        await objects.close()
        await cache.close()

    app = FastAPI(
        title="stock-symbol",
        version="1",
        description="Owns the stocks: create, read, list, delete, random pick, logo state.",
        lifespan=lifespan,
    )
    install_observability(
        app,
        service="stock-symbol",
        readiness_checks=[repository.check, jobs.check, objects.check],
        readiness_timeout=settings.readiness_timeout_seconds,
        fault_error_rate=settings.fault_error_rate,
    )
    install_error_handlers(app)

    async def present(stock: Stock, *, with_price: bool = True) -> StockOut:
        price = await prices.price_for(stock) if with_price else stock.last_price
        url = objects.url_for(stock.logo.key) if stock.logo.key else None
        return StockOut.of(stock, price, url)

    async def present_many(stocks: Sequence[Stock]) -> list[StockOut]:
        """Each stock presented with its price, with bounded concurrency."""
        gate = asyncio.Semaphore(LIST_PRICE_CONCURRENCY)

        async def one(stock: Stock) -> StockOut:
            async with gate:
                return await present(stock)

        return list(await asyncio.gather(*map(one, stocks)))

    async def present_with_series(stock: Stock, interval: Interval | None) -> JSONResponse:
        """The stock with its price and, when asked for, a series: one call for a page view.

        Answered as a JSONResponse built directly: FastAPI's validation of the response model
        would dump and re-validate every point of the series, doubling the cost of the call.
        The answer's shape is still ``StockWithSeriesOut`` (schemathesis checks it).
        """
        if interval is None:
            out, series = await present(stock), None
        else:
            out, series = await asyncio.gather(
                present(stock), prices.series_for(stock.symbol, interval)
            )
        body = out.model_dump(mode="json")
        body["series"] = series_json(series) if series is not None else None
        return JSONResponse(body)

    # Domain and service errors, each answered with its status and its own sentence.
    statuses: dict[type[Exception], int] = {
        InvalidStock: 422,
        UnknownUpload: 422,
        StockNotFound: 404,
        InvalidTransition: 409,
        PreconditionFailed: 412,
        JobNotQueued: 503,
    }

    async def known_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RejectedImage):
            status = exc.status_code
        else:
            status = next(statuses[kind] for kind in type(exc).__mro__ if kind in statuses)
        return error_response(status, str(exc))

    for exception in (*statuses, RejectedImage):
        app.add_exception_handler(exception, known_error)

    @app.exception_handler(VersionConflict)
    async def conflict(request: Request, exc: VersionConflict) -> JSONResponse:
        return error_response(409, f"stock {exc.symbol} is being changed concurrently; retry")

    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        """OpenAPI entries for the error answers a route gives, all ``{"detail": ...}``."""
        return {code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]} for code in codes}

    @app.post(
        "/api/uploads",
        status_code=201,
        response_model=UploadOut,
        responses=errors(400, 413, 415, 422),
    )
    async def upload(request: Request, file: UploadFile) -> UploadOut:
        """Store a logo upload after checking it is an acceptable image."""
        declared = request.headers.get("content-length")
        limit = settings.max_upload_bytes
        if declared and declared.isdigit() and int(declared) > settings.max_upload_request_bytes:
            raise ImageTooLarge(f"upload is larger than the limit of {limit} bytes")
        data = bytearray()
        while chunk := await file.read(UPLOAD_CHUNK):
            data.extend(chunk)
            if len(data) > limit:
                raise ImageTooLarge(f"upload is larger than the limit of {limit} bytes")
        stored = await service.store_upload(bytes(data))
        info = stored.info
        return UploadOut(
            upload_id=stored.upload_id,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            size=info.size,
        )

    @app.post(
        "/api/uploads/direct",
        status_code=201,
        response_model=DirectUploadOut,
        responses=errors(404, 503),
    )
    async def direct_upload() -> DirectUploadOut | JSONResponse:
        """A presigned form for uploading a logo straight to the object store (S3 only)."""
        offered = service.direct_upload(expires_seconds=DIRECT_UPLOAD_SECONDS)
        if offered is None:
            return error_response(
                404, "direct uploads need the aws backend; POST the file to /api/uploads instead"
            )
        upload_id, form = offered
        return DirectUploadOut(
            upload_id=upload_id, url=form.url, fields=dict(form.fields), expires_at=form.expires_at
        )

    @app.post(
        "/api/stocks",
        status_code=201,
        response_model=StockOut,
        responses=errors(400, 409, 422, 503),
    )
    async def create_stock(
        body: StockCreate,
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> StockOut | JSONResponse:
        """Create a stock; 409 when the symbol exists, unless this is a retry of the same create."""
        try:
            stock = await service.create(body.symbol, body.name, body.upload_id, idempotency_key)
        except StockExists as exists:
            existing = await present(exists.existing, with_price=False)
            return error_response(
                409,
                f"stock {exists.existing.symbol} already exists",
                stock=existing.model_dump(mode="json"),
            )
        return await present(stock, with_price=False)

    @app.get("/api/stocks", response_model=StockList, responses=errors(422))
    async def list_stocks(
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=32)] = None,
    ) -> StockList:
        page = await repository.list(limit=limit, cursor=cursor)
        items = await present_many(page.items)
        return StockList(items=items, next_cursor=page.next_cursor, total=await repository.count())

    @app.get("/api/stocks/random", response_model=StockWithSeriesOut, responses=errors(404, 422))
    async def random_stock(series: SeriesQuery = None) -> JSONResponse:
        """A uniformly random stock with its price (and a price series when asked for)."""
        stock = await repository.random()
        if stock is None:
            return error_response(404, "no stocks yet: add one with POST /api/stocks")
        return await present_with_series(stock, series)

    @app.get("/api/stocks/random-picks", response_model=RandomPicks, responses=errors(422))
    async def random_picks(
        count: Annotated[int, Query(ge=1, le=MAX_RANDOM_PICKS)] = 1,
    ) -> JSONResponse:
        """``count`` independent uniformly random picks, each with its price (no series).

        The same stock may come more than once: each item is a draw of its own, so a caller
        may serve them one by one as separate random picks. Empty when there are no stocks.
        """
        draws = await asyncio.gather(*(repository.random() for _ in range(count)))
        # One price lookup per distinct stock of the batch, not per draw.
        distinct = {(s.symbol, s.version): s for s in draws if s is not None}
        presented = await present_many(list(distinct.values()))
        shown = {
            key: out.model_dump(mode="json") for key, out in zip(distinct, presented, strict=True)
        }
        items = [shown[(s.symbol, s.version)] for s in draws if s is not None]
        return JSONResponse({"items": items})

    @app.get("/api/stocks/{symbol}", response_model=StockWithSeriesOut, responses=errors(404, 422))
    async def get_stock(symbol: str, series: SeriesQuery = None) -> JSONResponse:
        """One stock with its price (and a price series when asked for)."""
        stock = await service.get(symbol)
        if stock is None:
            raise StockNotFound(symbol.upper())
        return await present_with_series(stock, series)

    @app.put(
        "/api/stocks/{symbol}/logo",
        response_model=StockOut,
        responses=errors(400, 404, 409, 412, 422, 503),
    )
    async def change_logo(
        symbol: str,
        body: LogoUpdate,
        if_match: Annotated[str | None, Header()] = None,
    ) -> StockOut | JSONResponse:
        """Link a new logo upload (state pending), or record the resize result."""
        if body.state == "pending":
            expected = _parse_if_match(if_match)
            stock = await service.request_logo(symbol, body.upload_id, expected)
        elif body.state == "ready":
            stock = await service.logo_ready(symbol, body.upload_id, body.key or "")
        else:
            stock = await service.logo_failed(
                symbol, body.upload_id, body.error or "logo could not be processed"
            )
        return await present(stock, with_price=False)

    @app.delete("/api/stocks/{symbol}", status_code=204, responses=errors(404, 422))
    async def delete_stock(symbol: str) -> Response:
        if not await service.delete(symbol):
            raise StockNotFound(symbol.upper())
        return Response(status_code=204)

    @app.get(
        "/api/logos/{path:path}",
        response_class=Response,
        responses={
            200: {"content": {"image/webp": {}}, "description": "The resized logo."},
            **errors(404),
        },
    )
    async def get_logo(path: str) -> Response:
        """Serve a resized logo (local backend; on AWS logos come from the CDN)."""
        try:
            obj = await objects.get(f"logos/{path}")
        except ValueError:
            obj = None
        if obj is None:
            return error_response(404, "no such logo")
        return Response(
            obj.data,
            media_type=obj.content_type,
            headers={
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    return app


def series_json(series: PriceSeries) -> dict[str, Any]:
    """A series in the shape of ``SeriesOut``, built without a model per point."""
    return {
        "symbol": series.symbol,
        "interval": series.interval.value,
        "source": series.source,
        "points": [{"date": p.day.isoformat(), "close": p.close} for p in series.points],
    }


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip().strip('"').removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidStock("If-Match must be a stock version number")
    return int(raw)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from the environment, logging set up."""
    settings = get_settings()
    configure_logging(settings, "stock-symbol")
    configure_tracing(settings, "stock-symbol")
    return create_app(settings)

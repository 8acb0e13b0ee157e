"""How stock-symbol answers the errors of its service layer, and how its OpenAPI documents them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import InvalidStock, InvalidTransition
from stockday.logos.images import RejectedImage
from stockday.runtime.web.errors import ErrorOut, error_response
from stockday.stock_symbol.moderation import UnknownQueue
from stockday.stock_symbol.service import (
    JobNotQueued,
    PreconditionFailed,
    UnknownUpload,
    UploadLinked,
)
from stockday.stocks.base import StockNotFound, VersionConflict

ERROR_MEANINGS = {
    400: "The body could not be parsed (malformed JSON or multipart).",
    404: "No such stock (or logo, or queue).",
    409: "Conflict: the symbol exists, the logo transition does not apply, or the upload is "
    "a stock's logo.",
    412: "If-Match names a version that is no longer current.",
    413: "The upload is larger than the byte limit.",
    415: "The upload is not a supported image format.",
    422: "Invalid input: the detail says which and why.",
    503: "A store (stocks, objects) or the queue is unavailable; retrying is safe.",
}

log = logging.getLogger("stockday.stock_symbol")

# What a caller is told when a store fails: the reason (which names resources and settings)
# goes to the log, not to the visitor the frontend shows this sentence to.
STORE_UNAVAILABLE = "the stock store is unavailable right now; try again in a moment"
RETRY_AFTER_SECONDS = "5"

# Domain and service errors, each answered with its status and its own sentence.
STATUSES: dict[type[Exception], int] = {
    InvalidStock: 422,
    UnknownUpload: 422,
    StockNotFound: 404,
    UnknownQueue: 404,
    InvalidTransition: 409,
    PreconditionFailed: 412,
    JobNotQueued: 503,
    UploadLinked: 409,
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives, all ``{"detail": ...}``; every
    route reads or writes a store, so every route may answer 503."""
    return {
        code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]}
        for code in sorted({*codes, 503})
    }


async def known_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RejectedImage):
        status = exc.status_code
    else:
        status = next(STATUSES[kind] for kind in type(exc).__mro__ if kind in STATUSES)
    return error_response(status, str(exc))


async def concurrent_change(request: Request, exc: Exception) -> JSONResponse:
    symbol = exc.symbol if isinstance(exc, VersionConflict) else "?"
    return error_response(409, f"stock {symbol} is being changed concurrently; retry")


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Any failure of a store, whatever its kind (throttled, refused, unreachable, an operation
    the store lacks): a 503 the caller may retry, never a 500."""
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, STORE_UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_SECONDS})


def install_stock_error_handlers(app: FastAPI) -> None:
    """Answer the service layer's errors with their documented status codes."""
    for exception in (*STATUSES, RejectedImage):
        app.add_exception_handler(exception, known_error)
    app.add_exception_handler(VersionConflict, concurrent_change)
    app.add_exception_handler(BackendUnavailable, store_unavailable)

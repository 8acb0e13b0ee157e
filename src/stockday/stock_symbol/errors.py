"""How stock-symbol answers the errors of its service layer, and how its OpenAPI documents them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stockday.domain.stocks import InvalidStock, InvalidTransition
from stockday.logos.images import RejectedImage
from stockday.runtime.web.errors import ErrorOut, error_response
from stockday.stock_symbol.service import (
    JobNotQueued,
    PreconditionFailed,
    UnknownUpload,
    UploadLinked,
)
from stockday.stocks.base import StockNotFound, VersionConflict

ERROR_MEANINGS = {
    400: "The body could not be parsed (malformed JSON or multipart).",
    404: "No such stock (or logo).",
    409: "Conflict: the symbol exists, the logo transition does not apply, or the upload is "
    "a stock's logo.",
    412: "If-Match names a version that is no longer current.",
    413: "The upload is larger than the byte limit.",
    415: "The upload is not a supported image format.",
    422: "Invalid input: the detail says which and why.",
    503: "A dependency (the queue) is unavailable; retrying is safe.",
}

# Domain and service errors, each answered with its status and its own sentence.
STATUSES: dict[type[Exception], int] = {
    InvalidStock: 422,
    UnknownUpload: 422,
    StockNotFound: 404,
    InvalidTransition: 409,
    PreconditionFailed: 412,
    JobNotQueued: 503,
    UploadLinked: 409,
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives, all ``{"detail": ...}``."""
    return {code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]} for code in codes}


async def known_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RejectedImage):
        status = exc.status_code
    else:
        status = next(STATUSES[kind] for kind in type(exc).__mro__ if kind in STATUSES)
    return error_response(status, str(exc))


async def concurrent_change(request: Request, exc: Exception) -> JSONResponse:
    symbol = exc.symbol if isinstance(exc, VersionConflict) else "?"
    return error_response(409, f"stock {symbol} is being changed concurrently; retry")


def install_stock_error_handlers(app: FastAPI) -> None:
    """Answer the service layer's errors with their documented status codes."""
    for exception in (*STATUSES, RejectedImage):
        app.add_exception_handler(exception, known_error)
    app.add_exception_handler(VersionConflict, concurrent_change)

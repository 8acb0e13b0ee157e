"""One error shape for every JSON service: ``{"detail": "<sentence>"}``, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = logging.getLogger("stockday.web")

MAX_LISTED_ERRORS = 3


class ErrorOut(BaseModel):
    """An error answer: a sentence for people, and for invalid requests the field errors."""

    detail: str
    errors: list[dict[str, Any]] | None = None


def error_response(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The error answer of every JSON route: ``{"detail": ...}`` plus any extra fields."""
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def describe_validation_error(exc: RequestValidationError) -> str:
    """'body.symbol: Field required; query.limit: ...' from FastAPI's error list."""
    parts = []
    for item in exc.errors()[:MAX_LISTED_ERRORS]:
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg")))
    more = len(exc.errors()) - MAX_LISTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(422, describe_validation_error(exc), errors=jsonable_encoder(errors))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; it has been logged")

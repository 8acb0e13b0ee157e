"""Logo uploads from the add-stock form's script, passed on to stock-symbol."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from stockday.clients.stock_symbol import SymbolServiceUnavailable
from stockday.frontend import security
from stockday.frontend.deps import LimiterDep, SettingsDep, SymbolsDep
from stockday.frontend.errors import unavailable_json
from stockday.frontend.forms import BodyTooLarge, content_length, read_body
from stockday.frontend.quotas import (
    admit_upload,
    client_of,
    count_upload_bytes,
    too_many_json,
    upload_refusal,
)
from stockday.runtime.settings import Settings
from stockday.runtime.web.errors import error_response

log = logging.getLogger("stockday.frontend")

router = APIRouter()


@router.post("/uploads")
async def upload(
    request: Request, symbols: SymbolsDep, settings: SettingsDep, limiter: LimiterDep
) -> Response:
    """Forward a logo upload to stock-symbol unchanged and answer what it answered.

    Over the client's upload limits it is a 429 and nothing is stored: checked on the headers
    first (the count, the declared size), then on the bytes actually read.
    """
    # Checked on the headers alone, before a byte of the body is read.
    if not security.valid_request(request, request.headers.get(security.HEADER_NAME)):
        return error_response(
            403, "the upload was refused: reload the page and pick the file again"
        )
    client = client_of(request.scope)
    verdict = await admit_upload(limiter, client, content_length(request))
    if not verdict.allowed:
        return too_many_json(verdict, upload_refusal(settings.upload_bytes_per_hour))
    body = await _read_upload(request, settings)
    if isinstance(body, Response):
        return body
    verdict = await count_upload_bytes(limiter, client, len(body))
    if not verdict.allowed:
        return too_many_json(verdict, upload_refusal(settings.upload_bytes_per_hour))
    content_type = request.headers.get("content-type", "application/octet-stream")
    try:
        upstream = await symbols.forward_upload(body, content_type)
    except SymbolServiceUnavailable as exc:
        log.warning("upload not forwarded: %s", exc)
        return unavailable_json()
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


async def _read_upload(request: Request, settings: Settings) -> bytes | Response:
    """The upload's body, or the answer that refuses it."""
    try:
        # Buffered here (bounded by the limit) so a slow browser ties up only the frontend.
        return await read_body(request, settings.max_upload_request_bytes)
    except BodyTooLarge:
        return error_response(
            413, f"upload is larger than the limit of {settings.max_upload_bytes} bytes"
        )
    except ClientDisconnect:
        return error_response(400, "the upload was interrupted")

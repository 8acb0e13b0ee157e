"""Logo uploads from the add-stock form's script, passed on to stock-symbol."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from stockday.clients.stock_symbol import SymbolServiceUnavailable
from stockday.frontend import security
from stockday.frontend.deps import SettingsDep, SymbolsDep
from stockday.frontend.errors import unavailable_json
from stockday.frontend.forms import BodyTooLarge, read_body
from stockday.runtime.web.errors import error_response

log = logging.getLogger("stockday.frontend")

router = APIRouter()


@router.post("/uploads")
async def upload(request: Request, symbols: SymbolsDep, settings: SettingsDep) -> Response:
    """Forward a logo upload to stock-symbol unchanged and answer what it answered."""
    # Checked on the headers alone, before a byte of the body is read.
    if not security.valid_request(request, request.headers.get(security.HEADER_NAME)):
        return error_response(
            403, "the upload was refused: reload the page and pick the file again"
        )
    try:
        # Buffered here (bounded by the limit) so a slow browser ties up only the frontend.
        body = await read_body(request, settings.max_upload_request_bytes)
    except BodyTooLarge:
        return error_response(
            413, f"upload is larger than the limit of {settings.max_upload_bytes} bytes"
        )
    except ClientDisconnect:
        return error_response(400, "the upload was interrupted")
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

"""Logos: the resized images, and the state of a stock's logo while it is processed."""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from stockday.clients.stock_symbol import SymbolServiceUnavailable
from stockday.frontend.deps import SiteDep, SymbolsDep
from stockday.frontend.errors import unavailable_json
from stockday.runtime.web.errors import error_response

log = logging.getLogger("stockday.frontend")

# Logo keys are immutable (a new logo gets a new upload id), so browsers may keep them a year.
LOGO_CACHE_CONTROL = "public, max-age=31536000, immutable"
LOGO_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_LOGO_PATH = 256
# Logos are served only as the image types the resizer writes; anything else is a download.
LOGO_TYPES = frozenset({"image/webp", "image/png", "image/jpeg", "image/gif"})
LOGO_HEADERS = {
    "Cache-Control": LOGO_CACHE_CONTROL,
    "X-Content-Type-Options": "nosniff",
    # Even if a non-image slipped into storage, it could not run anything here.
    "Content-Security-Policy": "default-src 'none'; sandbox",
}

router = APIRouter()


@router.get("/stocks/{symbol}/logo-state")
async def logo_state(site: SiteDep, symbol: str) -> Response:
    """The logo's state as JSON, polled by the stock page until the logo is ready."""
    try:
        state = await site.logo_state(symbol)
    except SymbolServiceUnavailable as exc:
        log.warning("logo state not fetched: %s", exc)
        return unavailable_json()  # the script asks again later
    if state is None:
        return error_response(404, "no such stock")
    return JSONResponse(state, headers={"Cache-Control": "no-store"})


@router.get("/logos/{path:path}")
async def logo(symbols: SymbolsDep, path: str) -> Response:
    """Stream a resized logo from stock-symbol with long-lived caching headers."""
    parts = path.split("/")
    if len(path) > MAX_LOGO_PATH or not all(LOGO_SEGMENT.fullmatch(p) for p in parts):
        # Also keeps "..", "." and empty segments from reaching stock-symbol's other routes.
        return error_response(404, "no such logo")
    try:
        upstream = await symbols.open_logo(path)
    except SymbolServiceUnavailable as exc:
        log.warning("logo not fetched: %s", exc)
        return unavailable_json()
    if upstream.status_code != 200:
        try:
            if upstream.status_code == 404:  # stock-symbol's own answer, passed through
                body = await upstream.aread()
                media_type = upstream.headers.get("content-type", "application/json")
                return Response(body, status_code=404, media_type=media_type)
        finally:
            await upstream.aclose()
        return error_response(404, "no such logo")
    headers = dict(LOGO_HEADERS)
    if "content-length" in upstream.headers and "content-encoding" not in upstream.headers:
        headers["Content-Length"] = upstream.headers["content-length"]
    declared = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
    return StreamingResponse(
        upstream.aiter_bytes(),
        media_type=declared if declared in LOGO_TYPES else "application/octet-stream",
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )

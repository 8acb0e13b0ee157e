"""Resized logos, served from the object store (local backend; on AWS from the CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stockday.runtime.web.errors import error_response
from stockday.stock_symbol.deps import StockServiceDep
from stockday.stock_symbol.errors import documented

router = APIRouter()


@router.get(
    "/api/logos/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"image/webp": {}}, "description": "The resized logo."},
        **documented(404),
    },
)
async def get_logo(path: str, stocks: StockServiceDep) -> Response:
    """Serve a resized logo (local backend; on AWS logos come from the CDN)."""
    logo = await stocks.read_logo(path)
    if logo is None:
        return error_response(404, "no such logo")
    return Response(
        logo.data,
        media_type=logo.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=31536000, immutable",
        },
    )

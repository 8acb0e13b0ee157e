"""Logo uploads: through stock-symbol, or straight to the object store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from stockday.contracts.stocks import DirectUploadOut, UploadOut
from stockday.runtime.web.errors import error_response
from stockday.stock_symbol.deps import StockServiceDep
from stockday.stock_symbol.errors import documented

UPLOAD_CHUNK = 64 * 1024

router = APIRouter()


async def _chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(UPLOAD_CHUNK):
        yield chunk


@router.post(
    "/api/uploads",
    status_code=201,
    response_model=UploadOut,
    responses=documented(400, 413, 415, 422),
)
async def upload(request: Request, file: UploadFile, stocks: StockServiceDep) -> UploadOut:
    """Store a logo upload after checking it is an acceptable image."""
    declared = request.headers.get("content-length")
    length = int(declared) if declared and declared.isdigit() else None
    return await stocks.receive_upload(_chunks(file), length)


@router.post(
    "/api/uploads/direct",
    status_code=201,
    response_model=DirectUploadOut,
    responses=documented(404, 503),
)
async def direct_upload(stocks: StockServiceDep) -> DirectUploadOut | JSONResponse:
    """A presigned form for uploading a logo straight to the object store (S3 only)."""
    offered = stocks.offer_direct_upload()
    if offered is None:
        return error_response(
            404, "direct uploads need the aws backend; POST the file to /api/uploads instead"
        )
    return offered


@router.delete("/api/uploads/{upload_id}", status_code=204, responses=documented(409, 422))
async def discard_upload(
    upload_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$")], stocks: StockServiceDep
) -> Response:
    """Delete a raw upload no stock links (a refused form's); 409 when a stock links it."""
    await stocks.discard_upload(upload_id)
    return Response(status_code=204)

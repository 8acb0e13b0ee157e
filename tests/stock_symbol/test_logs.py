"""Upload bytes never reach the logs, good or bad, at any level."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stockday.runtime.settings import Settings
from stockday.stock_symbol.app import create_app

pytestmark = pytest.mark.anyio

MARKER = "UPLOAD-CONTENT-MARKER-7f3a"


def png_with_marker() -> bytes:
    info = PngInfo()
    info.add_text("Comment", MARKER)
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "teal").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


async def test_uploads_are_not_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://symbol"
    ) as api:
        with caplog.at_level(logging.DEBUG):
            good = await api.post(
                "/api/uploads", files={"file": ("a.png", png_with_marker(), "image/png")}
            )
            bad = await api.post(
                "/api/uploads", files={"file": ("b.png", MARKER.encode() * 50, "image/png")}
            )
            cut = await api.post(
                "/api/uploads", files={"file": ("c.png", png_with_marker()[:60], "image/png")}
            )
    assert good.status_code == 201
    assert bad.status_code == 415
    assert cut.status_code == 422
    assert caplog.records  # the requests were logged at this level, just not their bodies
    assert MARKER not in caplog.text

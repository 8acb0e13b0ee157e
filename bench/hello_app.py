"""The reference app of the page-view benchmark: FastAPI returning a small fixed HTML page.

Served by uvicorn with the same options and worker count as the stack's services, it is the
ceiling for an HTML page on this server software and this machine: no template, no backend call.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello</title></head>
<body><h1>Hello, world</h1><p>The reference page of the page-view benchmark.</p></body>
</html>
"""

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/", response_class=HTMLResponse)
async def home() -> HTMLResponse:
    return HTMLResponse(PAGE)

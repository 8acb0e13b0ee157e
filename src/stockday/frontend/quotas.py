"""Per-client limits on the site: who the client is, page views counted, 429 answered.

The client is the address the request came from, or, behind the load balancer, the address it
put in X-Forwarded-For: uvicorn's ProxyHeadersMiddleware reads the header only when the
connection comes from one of ``STOCKDAY_TRUSTED_PROXIES`` and takes the rightmost address that
is not a trusted proxy, so a client cannot pick its identity by sending the header itself.

Page views (every GET and HEAD but static files, probes and metrics) are counted by the
``PageViewLimit`` middleware; creates and uploads by their routes, which know the upload's size
and the upload id to discard when the create is refused. Over a limit, a person gets a page
and a script JSON, both 429 with Retry-After, both saying when to try again.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from stockday.frontend.deps import frontend_of
from stockday.frontend.errors import JSON_PREFIXES
from stockday.ratelimit.limiter import ALLOWED, ClientLimiter, Verdict
from stockday.runtime.web.errors import error_response

# Not page views: the page's own files, and what the platform (not a visitor) calls.
UNCOUNTED_PREFIXES = ("/static/", "/api/ping", "/api/ready", "/metrics")
UNKNOWN_CLIENT = "unknown"


def client_of(scope: Scope) -> str:
    """The client's address as the trusted proxy reported it (see the module docstring)."""
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_CLIENT


def wait_phrase(seconds: int) -> str:
    """'in 42 seconds', 'in 3 minutes', 'in 2 hours': when to try again, for people."""
    if seconds < 90:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"in {round(seconds / 60)} minutes"
    return f"in {round(seconds / 3600)} hours"


def retry_headers(verdict: Verdict) -> dict[str, str]:
    return {"Retry-After": str(verdict.retry_after)}


def too_many_json(verdict: Verdict, what: str) -> Response:
    """The 429 of a script's request: ``what`` was refused, and when to try again."""
    return error_response(
        429,
        f"{what}; try again {wait_phrase(verdict.retry_after)}",
        headers=retry_headers(verdict),
        retry_after=verdict.retry_after,
    )


def too_many_page(request: Request, verdict: Verdict) -> Response:
    """The 429 of a page view, as a page."""
    return frontend_of(request).pages.error_page(
        request,
        429,
        "Too many requests",
        "This address has asked for many pages in a short time. "
        f"Please try again {wait_phrase(verdict.retry_after)}.",
        headers=retry_headers(verdict),
    )


async def admit_upload(limiter: ClientLimiter, client: str, declared: int | None) -> Verdict:
    """Count one upload, and check (counting nothing yet) that its declared size fits."""
    verdict = await limiter.hit("uploads", client)
    if verdict.allowed and declared:
        verdict = await limiter.test("upload-bytes", client, cost=declared)
    return verdict


async def count_upload_bytes(limiter: ClientLimiter, client: str, size: int) -> Verdict:
    """Count the bytes of an upload that was read; refused when they pass the hour's quota."""
    return await limiter.hit("upload-bytes", client, cost=size) if size else ALLOWED


async def admit_create(limiter: ClientLimiter, client: str, file: object) -> Verdict:
    """Count one create and, when the form carries its file itself, that upload and its size."""
    verdict = await limiter.hit("creates", client)
    size = (file.size or 0) if isinstance(file, UploadFile) and file.filename else 0
    if verdict.allowed and size:
        verdict = await admit_upload(limiter, client, size)
        if verdict.allowed:
            verdict = await count_upload_bytes(limiter, client, size)
    return verdict


def create_refusal(verdict: Verdict, upload_discarded: bool) -> str:
    """What the add-stock form says when the client is over its limits."""
    again = " and pick the logo again" if upload_discarded else ""
    return (
        "This address has added many stocks or logos in a short time, so nothing was saved. "
        f"Please try again {wait_phrase(verdict.retry_after)}{again}."
    )


def upload_refusal(byte_quota: int) -> str:
    """What a refused upload is told: which limits there are, and that nothing was kept."""
    per_hour = f" (at most {byte_quota / 1024 / 1024:g} MB an hour)" if byte_quota else ""
    return f"too many uploads from this address{per_hour}; nothing was stored"


class PageViewLimit:
    """ASGI middleware counting every GET and HEAD of a client against the ``pages`` rule."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"].startswith(UNCOUNTED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        frontend = scope["app"].state.frontend
        verdict = await frontend.limiter.hit("pages", client_of(scope))
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["path"].startswith(JSON_PREFIXES):
            response = too_many_json(verdict, "too many requests from this address")
        else:
            response = too_many_page(request, verdict)
        await response(scope, receive, send)

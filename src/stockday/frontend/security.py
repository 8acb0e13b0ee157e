"""What keeps the site safe in a browser: security headers and CSRF tokens.

CSRF uses the double-submit pattern with a masked token, as Django does: a random secret lives
in an HttpOnly, SameSite=Strict cookie; every form (and the upload script, in a header) carries
the secret XOR-masked with a fresh random pad, so the token differs on every page (no BREACH
oracle) while any rendered token stays valid for as long as the cookie. There is no login
session to bind a token to, so a server-side signing key would add nothing (and would be one
more secret every replica must share); instead requests a browser marks as coming from another
origin are refused outright. Hand-written because no CSRF library is locked and the whole
mechanism is a few lines of the standard library (secrets, hmac).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "stockday_csrf"
FIELD_NAME = "csrf_token"
HEADER_NAME = "X-CSRF-Token"
SECRET_BYTES = 32
# A year, as Django does: a form left open in a tab keeps working; the token is not a session.
COOKIE_MAX_AGE_SECONDS = 365 * 24 * 3600


def security_headers(image_origins: Sequence[str] = ()) -> dict[str, str]:
    """The headers of every answer; ``image_origins`` are extra origins logos may come from.

    No script or style from anywhere but the site itself and nothing inline; logos may come from
    a CDN or signed S3 URLs (https), and the upload preview is a ``blob:`` URL.
    """
    img_src = " ".join(["'self'", "https:", "data:", "blob:", *image_origins])
    policy = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {img_src}; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


class SecurityHeaders:
    """ASGI middleware: every response gets the security headers it does not set itself."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self.headers if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if len(text) > 128:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def mask(secret: bytes) -> str:
    """A token for ``secret``: a random pad followed by the secret XOR the pad."""
    pad = secrets.token_bytes(len(secret))
    return _b64encode(pad + bytes(a ^ b for a, b in zip(pad, secret, strict=True)))


def unmask(token: str) -> bytes | None:
    raw = _b64decode(token)
    if raw is None or len(raw) != 2 * SECRET_BYTES:
        return None
    pad, masked = raw[:SECRET_BYTES], raw[SECRET_BYTES:]
    return bytes(a ^ b for a, b in zip(pad, masked, strict=True))


def cookie_secret(request: Request) -> bytes | None:
    """The visitor's CSRF secret, if the cookie holds a well-formed one."""
    raw = _b64decode(request.cookies.get(COOKIE_NAME, ""))
    return raw if raw is not None and len(raw) == SECRET_BYTES else None


def token_for(request: Request) -> str:
    """A token for a form on this page; creates the visitor's secret on first use."""
    secret = cookie_secret(request) or getattr(request.state, "new_csrf_secret", None)
    if secret is None:
        secret = secrets.token_bytes(SECRET_BYTES)
        request.state.new_csrf_secret = secret
    return mask(secret)


def set_cookie_if_new(request: Request, response: Response) -> None:
    """Send the secret that ``token_for`` created while this page was rendered."""
    secret = getattr(request.state, "new_csrf_secret", None)
    if secret is None:
        return
    response.set_cookie(
        COOKIE_NAME,
        _b64encode(secret),
        max_age=COOKIE_MAX_AGE_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,  # the script reads the token from the page, never from the cookie
        samesite="strict",
    )


DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def parse_origin(scheme: str, netloc: str) -> Origin | None:
    """(scheme, host, port) with the default port made explicit; None when unreadable."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port out of range or not a number, a broken IPv6 literal
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    return scheme, parts.hostname, port


def own_origin(request: Request) -> Origin | None:
    """The origin this request was sent to: its scheme (https when a trusted load balancer says
    TLS ended there, see ``app.py``) and its Host header."""
    return parse_origin(request.url.scheme, request.headers.get("host", ""))


def from_other_origin(request: Request) -> bool:
    """True when the browser says the request comes from another site or origin.

    An origin is a scheme, a host and a port: a page of http://site may not post to https://site
    (a network attacker can write plain-HTTP pages), nor one of site:8443 to site.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not sent by older browsers for same-origin requests; the token decides
    try:
        parts = urlsplit(origin)
    except ValueError:  # a broken IPv6 literal: "http://[::1"
        return True
    if parts.path or parts.query or parts.fragment:  # "null", or not an origin at all
        return True
    claimed = parse_origin(parts.scheme, parts.netloc)
    return claimed is None or claimed != own_origin(request)


def valid_request(request: Request, token: str | None) -> bool:
    """The submitted token matches the cookie's secret and the request is same-origin."""
    if from_other_origin(request):
        return False
    secret = cookie_secret(request)
    submitted = unmask(token) if token else None
    if secret is None or submitted is None:
        return False
    return hmac.compare_digest(secret, submitted)

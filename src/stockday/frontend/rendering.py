"""Pages as responses: the template environment, CSRF tokens on forms, one-shot flashes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.frontend import security, views
from stockday.frontend.forms import StockForm

PACKAGE = "stockday.frontend"
RETRY_AFTER_SECONDS = "5"

# Pages are dynamic (home is a random pick); the security headers come from the middleware.
PAGE_HEADERS = {"Cache-Control": "no-store"}

# One-shot confirmations ("ACME was added") travel in a short-lived cookie scoped to the page
# that shows them: no server-side session, and a reload does not repeat them.
FLASH_COOKIE = "stockday_flash"
FLASH_SECONDS = 60
FLASH_VALUE = re.compile(r"(added|deleted|hidden|shown|logo|redriven):([A-Z0-9][A-Z0-9.-]{0,15})")
FLASH_MESSAGES = {
    "added": "{symbol} was added to the watchlist.",
    "deleted": "{symbol} is no longer on the watchlist.",
    "hidden": "{symbol} is hidden from the random pick and the watchlist.",
    "shown": "{symbol} is back in the random pick and the watchlist.",
    "logo": "{symbol} has a new logo, being processed.",
    "redriven": "{symbol} dead letters were sent back to their queue.",
}


@dataclass(frozen=True)
class Flash:
    kind: str
    symbol: str

    @property
    def message(self) -> str:
        return FLASH_MESSAGES[self.kind].format(symbol=self.symbol)


def read_flash(request: Request) -> Flash | None:
    match = FLASH_VALUE.fullmatch(request.cookies.get(FLASH_COOKIE, ""))
    return Flash(match.group(1), match.group(2)) if match else None


def redirect_with_flash(location: str, kind: str, symbol: str) -> RedirectResponse:
    """A 303 to ``location`` that shows a confirmation there, once."""
    response = RedirectResponse(location, status_code=303)
    value = f"{kind}:{symbol}"
    if not FLASH_VALUE.fullmatch(value):
        return response  # not a ticker: nothing worth confirming, nothing odd in a cookie
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_SECONDS,
        path=location,
        httponly=True,
        samesite="lax",
    )
    return response


def shown_symbol(typed: str) -> str:
    """A symbol as a page names it: canonical when it is a ticker, else as typed (escaped by
    the template), never upper-cased into another symbol."""
    try:
        return normalize_symbol(typed.strip())
    except InvalidStock:
        return typed.strip()[:32]


def stock_path(symbol: str) -> str:
    return f"/stocks/{quote(symbol, safe='')}"


def build_templates(http_image_origins: Sequence[str] = ()) -> Jinja2Templates:
    """Templates from the installed package, autoescaped, failing loudly on undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = views.format_money
    env.filters["signed"] = views.format_signed
    env.filters["percent"] = views.format_percent
    env.filters["direction"] = views.price_direction
    env.filters["source_label"] = views.source_label
    env.filters["initials"] = views.initials
    env.tests["simulated"] = views.is_simulated
    env.globals["logo_src"] = partial(views.logo_src, http_origins=tuple(http_image_origins))
    return Jinja2Templates(env=env)


class Pages:
    """Renders the site's pages; a form on a page gets a CSRF token (a first visit the cookie)."""

    def __init__(self, templates: Jinja2Templates, *, max_upload_bytes: int) -> None:
        self.templates = templates
        self.max_upload_bytes = max_upload_bytes

    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        response = self.templates.TemplateResponse(
            request,
            template,
            {"csrf_token": lambda: security.token_for(request), "flash": None, **(context or {})},
            status_code=status_code,
            headers={**PAGE_HEADERS, **(headers or {})},
        )
        security.set_cookie_if_new(request, response)
        return response

    def page_with_flash(
        self, request: Request, template: str, context: Mapping[str, Any], flash_path: str
    ) -> Response:
        """A page that shows, then forgets, the confirmation left for it by a redirect."""
        flash = read_flash(request)
        response = self.page(request, template, {**context, "flash": flash})
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=flash_path)
        return response

    def error_page(
        self,
        request: Request,
        status_code: int,
        title: str,
        message: str,
        *,
        link: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An error as a page; ``link`` is an optional (url, label) to go on from there."""
        context = {"status": status_code, "title": title, "message": message, "link": link}
        return self.page(request, "error.html", context, status_code=status_code, headers=headers)

    def unavailable_page(self, request: Request) -> Response:
        return self.error_page(
            request,
            503,
            "Stock service unavailable",
            "The stock service is unavailable right now. Please try again in a moment.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    def operators_only(self, request: Request) -> Response:
        """The answer to an anonymous moderation request: 401, with the way to log in."""
        return self.error_page(
            request,
            401,
            "Operators only",
            "Only an operator can do that. Log in as operator first.",
            link=("/operator/login", "Operator login"),
        )

    def bad_form(self, request: Request) -> Response:
        return self.error_page(request, 400, "Bad form", "The form could not be read; try again.")

    def no_such_stock(self, request: Request, symbol: str) -> Response:
        return self.error_page(
            request,
            404,
            "No such stock",
            f"There is no stock {shown_symbol(symbol)} on the watchlist.",
            link=(f"/stocks/new?symbol={quote(symbol.strip()[:32], safe='')}", "Add it"),
        )

    def form_page(self, request: Request, form: StockForm, status_code: int = 200) -> Response:
        """The add-stock form showing ``form``."""
        context = {"form": form, "max_upload_bytes": self.max_upload_bytes, "nav": "new"}
        return self.page(request, "new.html", context, status_code=status_code)

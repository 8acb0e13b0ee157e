"""Stocks: a stock's page, and the forms that add and delete stocks."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from stockday.clients.stock_symbol import GENERAL, SymbolServiceUnavailable
from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.frontend import security
from stockday.frontend.chart import parse_interval
from stockday.frontend.deps import LimiterDep, OperatorsDep, PagesDep, SettingsDep, SiteDep
from stockday.frontend.forms import (
    UPLOAD_ID,
    BodyTooLarge,
    StockForm,
    read_form,
    text_field,
)
from stockday.frontend.quotas import admit_create, client_of, create_refusal, retry_headers
from stockday.frontend.rendering import (
    RETRY_AFTER_SECONDS,
    Pages,
    redirect_with_flash,
    stock_path,
)
from stockday.frontend.routes.operators import is_operator, refuse_unless_allowed, small_form
from stockday.frontend.service import FormRejected, StockSite
from stockday.ratelimit.limiter import ClientLimiter

log = logging.getLogger("stockday.frontend")

router = APIRouter()


@router.get("/stocks/new", response_class=HTMLResponse)
async def new_stock(request: Request, pages: PagesDep, symbol: str = "") -> Response:
    """The add-stock form, with a fresh idempotency key."""
    return pages.form_page(request, StockForm(symbol=symbol.strip()[:32]))


@router.get("/stocks/{symbol}", response_class=HTMLResponse)
async def stock_page(
    request: Request, pages: PagesDep, site: SiteDep, symbol: str, interval: str = ""
) -> Response:
    """One stock with its chart; its logo appears by itself once processed."""
    context = await site.stock_page(symbol, parse_interval(interval))
    if context is None:
        return pages.no_such_stock(request, symbol)
    path = stock_path(context["stock"].symbol)
    return pages.page_with_flash(request, "stock.html", context, path)


@router.post("/stocks", response_class=HTMLResponse)
async def create_stock(
    request: Request, pages: PagesDep, site: SiteDep, settings: SettingsDep, limiter: LimiterDep
) -> Response:
    """Create a stock from the form; 303 to its page, or the form again with the error."""
    try:
        form_data = await read_form(
            request, settings.max_upload_request_bytes, max_files=1, max_fields=20
        )
    except BodyTooLarge:
        limit_mb = settings.max_upload_bytes / (1024 * 1024)
        return pages.error_page(
            request,
            413,
            "Upload too large",
            f"That form is too large: logos may be at most {limit_mb:g} MB.",
        )
    except (ClientDisconnect, MultiPartException):
        return pages.bad_form(request)
    try:
        return await submit(request, pages, site, form_data, limiter)
    finally:
        await form_data.close()  # removes the spooled temporary file of a no-script upload


async def submit(
    request: Request, pages: Pages, site: StockSite, form_data: FormData, limiter: ClientLimiter
) -> Response:
    form = StockForm.submitted(form_data)
    if form.upload_id and not UPLOAD_ID.fullmatch(form.upload_id):
        form.upload_id = ""
        form.errors["upload_id"] = "the logo upload was not recognised; pick the file again"
        form.check_rules()  # and whatever else is wrong, all shown at once
        return pages.form_page(request, form, 422)
    if not security.valid_request(request, text_field(form_data, security.FIELD_NAME)):
        # Nothing is created or uploaded; the visitor's own form comes back, ready to send.
        form.errors[GENERAL] = (
            "This form has expired or did not come from this site, so nothing was saved. "
            "Check your input and submit again."
        )
        return pages.form_page(request, form, 403)
    verdict = await admit_create(limiter, client_of(request.scope), form_data.get("file"))
    if not verdict.allowed:
        # Refused before anything reaches stock-symbol: the upload it names goes at once.
        discarded = bool(form.upload_id) and await site.discard_upload(form.upload_id)
        form.upload_id = "" if discarded else form.upload_id
        form.errors[GENERAL] = create_refusal(verdict, discarded)
        response = pages.form_page(request, form, 429)
        response.headers.update(retry_headers(verdict))
        return response
    try:
        stock = await site.add_stock(form, form_data.get("file"))
    except FormRejected as rejected:
        await drop_refused_upload(site, form)
        return pages.form_page(request, form, rejected.status)
    except SymbolServiceUnavailable as exc:
        return unavailable_form(request, pages, form, exc)
    return redirect_with_flash(stock_path(stock.symbol), "added", stock.symbol)


async def drop_refused_upload(site: StockSite, form: StockForm) -> None:
    """A refused create keeps no upload: stock-symbol has dropped it already, or it goes now
    (if stock-symbol cannot be asked, the janitor sweeps it after the retention). The form
    comes back asking for the logo again."""
    if not form.upload_id:
        return
    await site.discard_upload(form.upload_id)
    form.upload_id = ""
    form.errors.setdefault("upload_id", "pick the logo again: a refused form keeps no upload")


def unavailable_form(
    request: Request, pages: Pages, form: StockForm, exc: SymbolServiceUnavailable
) -> Response:
    """The form again with the visitor's input: resubmitting it is safe (same key)."""
    log.warning("create not done: %s", exc)
    form.errors[GENERAL] = exc.detail or (
        "The stock service is unavailable right now. Your input is kept: submit again in a moment."
    )
    response = pages.form_page(request, form, 503)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


@router.get("/stocks/{symbol}/delete", response_class=HTMLResponse)
async def confirm_delete(
    request: Request, pages: PagesDep, site: SiteDep, operators: OperatorsDep, symbol: str
) -> Response:
    """Ask an operator before deleting: a link can be followed by accident, a form must be
    submitted."""
    if not await is_operator(request, operators):
        return pages.operators_only(request)
    stock = await site.stock(symbol)
    if stock is None:
        return pages.no_such_stock(request, symbol)
    return pages.page(request, "delete.html", {"stock": stock, "nav": "watchlist"})


@router.post("/stocks/{symbol}/delete", response_class=HTMLResponse)
async def delete_stock(
    request: Request, pages: PagesDep, site: SiteDep, operators: OperatorsDep, symbol: str
) -> Response:
    """An operator deletes a stock, then back to the watchlist; deleting twice is no error."""
    refusal = await refuse_unless_allowed(request, pages, operators, await small_form(request))
    if refusal is not None:
        return refusal
    try:
        canonical = normalize_symbol(symbol.strip())
    except InvalidStock:
        return pages.no_such_stock(request, symbol)
    await site.delete_stock(canonical)
    return redirect_with_flash("/watchlist", "deleted", canonical)

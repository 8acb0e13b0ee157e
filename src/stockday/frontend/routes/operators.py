"""Operators: log in and out, the moderation page, and what only an operator may do to a stock
(delete, hide, show, replace its logo) or to the queues (re-drive dead letters).

Every action is a form post checked twice: the operator's session (401 without one), then the
same CSRF token as every form of the site (403 without it).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from stockday.clients.stock_symbol import Refused
from stockday.contracts.stocks import LogoUpdate
from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import InvalidStock, normalize_symbol
from stockday.frontend import security
from stockday.frontend.deps import OperatorsDep, PagesDep, SettingsDep, SiteDep, SymbolsDep
from stockday.frontend.forms import SMALL_FORM_BYTES, BodyTooLarge, read_form, text_field
from stockday.frontend.operators import LoginBlocked, OperatorGate
from stockday.frontend.quotas import client_of
from stockday.frontend.rendering import Pages, redirect_with_flash
from stockday.operators.passwords import InvalidPasswordHash

log = logging.getLogger("stockday.frontend")

router = APIRouter()

OPERATOR_PAGE = "/operator"
RECENT_SHOWN = 50


def login_page(request: Request, pages: Pages, error: str = "", status: int = 200) -> Response:
    return pages.page(request, "login.html", {"error": error, "nav": ""}, status_code=status)


@router.get("/operator/login", response_class=HTMLResponse)
async def show_login(request: Request, pages: PagesDep) -> Response:
    return login_page(request, pages)


@router.post("/operator/login", response_class=HTMLResponse)
async def log_in(request: Request, pages: PagesDep, operators: OperatorsDep) -> Response:
    """Check the password; 303 to the moderation page with a session cookie, or the form."""
    form = await small_form(request)
    if form is None:
        return pages.bad_form(request)
    if not security.valid_request(request, text_field(form, security.FIELD_NAME)):
        return login_page(request, pages, "This form has expired; log in again.", 403)
    try:
        session = await operators.log_in(text_field(form, "password"), client_of(request.scope))
    except LoginBlocked as blocked:
        response = login_page(request, pages, f"Too many failed logins: {blocked}.", 429)
        response.headers["Retry-After"] = str(blocked.retry_after)
        return response
    except (BackendUnavailable, InvalidPasswordHash) as exc:
        log.error("operator login impossible: %s", exc)
        return login_page(request, pages, "Operator logins are unavailable right now.", 503)
    if session is None:
        return login_page(request, pages, "That is not the operator password.", 401)
    log.info("operator logged in from %s", client_of(request.scope))
    response = RedirectResponse(OPERATOR_PAGE, status_code=303)
    operators.set_session(request, response, session)
    return response


@router.post("/operator/logout", response_class=HTMLResponse)
async def log_out(request: Request, pages: PagesDep, operators: OperatorsDep) -> Response:
    form = await small_form(request)
    if form is None or not security.valid_request(request, text_field(form, security.FIELD_NAME)):
        return pages.error_page(request, 403, "Not logged out", "That form has expired.")
    response = RedirectResponse("/", status_code=303)
    operators.end_session(request, response)
    return response


@router.get("/operator", response_class=HTMLResponse)
async def moderation_page(
    request: Request, pages: PagesDep, operators: OperatorsDep, symbols: SymbolsDep
) -> Response:
    """Recent additions with their logos and actions, and every queue's dead letters."""
    if not await is_operator(request, operators):
        return RedirectResponse("/operator/login", status_code=303)
    recent = await symbols.recent_stocks(RECENT_SHOWN)
    dead = await symbols.dead_letters()
    context = {"recent": recent, "dead": dead.queues, "nav": "operator"}
    return pages.page_with_flash(request, "operator.html", context, OPERATOR_PAGE)


@router.post("/stocks/{symbol}/hide", response_class=HTMLResponse)
async def hide_stock(
    request: Request, pages: PagesDep, operators: OperatorsDep, site: SiteDep, symbol: str
) -> Response:
    return await change_visibility(request, pages, operators, site, symbol, hidden=True)


@router.post("/stocks/{symbol}/unhide", response_class=HTMLResponse)
async def unhide_stock(
    request: Request, pages: PagesDep, operators: OperatorsDep, site: SiteDep, symbol: str
) -> Response:
    return await change_visibility(request, pages, operators, site, symbol, hidden=False)


async def change_visibility(
    request: Request, pages: Pages, operators: OperatorGate, site: SiteDep, symbol: str, **how: bool
) -> Response:
    refusal = await refuse_unless_allowed(request, pages, operators, await small_form(request))
    if refusal is not None:
        return refusal
    stock = await site.set_hidden(symbol, how["hidden"])
    if stock is None:
        return pages.no_such_stock(request, symbol)
    kind = "hidden" if stock.hidden else "shown"
    return redirect_with_flash(OPERATOR_PAGE, kind, stock.symbol)


@router.post("/stocks/{symbol}/logo", response_class=HTMLResponse)
async def replace_logo(
    request: Request,
    pages: PagesDep,
    operators: OperatorsDep,
    symbols: SymbolsDep,
    settings: SettingsDep,
    symbol: str,
) -> Response:
    """Upload a new logo for a stock; it goes through the resizer like any logo."""
    if not await is_operator(request, operators):
        return pages.operators_only(request)
    try:
        form = await read_form(
            request, settings.max_upload_request_bytes, max_files=1, max_fields=5
        )
    except (BodyTooLarge, ClientDisconnect, MultiPartException):
        return pages.bad_form(request)
    try:
        refusal = await refuse_unless_allowed(request, pages, operators, form)
        if refusal is not None:
            return refusal
        return await upload_logo(request, pages, symbols, symbol, form.get("file"))
    finally:
        await form.close()


async def upload_logo(
    request: Request, pages: Pages, symbols: SymbolsDep, symbol: str, file: UploadFile | str | None
) -> Response:
    try:
        canonical = normalize_symbol(symbol.strip())
    except InvalidStock:
        return pages.no_such_stock(request, symbol)
    if not isinstance(file, UploadFile) or not file.filename:
        return pages.error_page(request, 422, "No logo", "Pick an image file to upload.")
    try:
        upload_id = await symbols.upload_file(
            file.filename, await file.read(), file.content_type or "application/octet-stream"
        )
        await symbols.change_logo(canonical, LogoUpdate(upload_id=upload_id, state="pending"))
    except Refused as refused:
        message = "; ".join(refused.messages.values())
        return pages.error_page(request, refused.status, "Logo not replaced", message)
    return redirect_with_flash(OPERATOR_PAGE, "logo", canonical)


@router.post("/operator/dead-letters/{queue}/redrive", response_class=HTMLResponse)
async def redrive(
    request: Request, pages: PagesDep, operators: OperatorsDep, symbols: SymbolsDep, queue: str
) -> Response:
    refusal = await refuse_unless_allowed(request, pages, operators, await small_form(request))
    if refusal is not None:
        return refusal
    moved = await symbols.redrive(queue)
    if moved is None:
        return pages.error_page(request, 404, "No such queue", f"There is no queue {queue!r}.")
    log.info("operator re-drove %d dead letters of %s", moved, queue)
    return redirect_with_flash(OPERATOR_PAGE, "redriven", str(moved))


async def is_operator(request: Request, operators: OperatorGate) -> bool:
    """Whether the request carries an operator session; an unreadable credential is a no."""
    try:
        return await operators.is_operator(request)
    except (BackendUnavailable, InvalidPasswordHash) as exc:
        log.error("operator sessions cannot be checked: %s", exc)
        return False


async def refuse_unless_allowed(
    request: Request, pages: Pages, operators: OperatorGate, form: FormData | None
) -> Response | None:
    """None when an operator sent this form from the site; else the page refusing it."""
    if not await is_operator(request, operators):
        return pages.operators_only(request)
    if form is None:
        return pages.bad_form(request)
    if not security.valid_request(request, text_field(form, security.FIELD_NAME)):
        return pages.error_page(
            request,
            403,
            "Not done",
            "That request has expired or did not come from this site, so nothing was changed.",
            link=(OPERATOR_PAGE, "Back to moderation"),
        )
    return None


async def small_form(request: Request) -> FormData | None:
    """A form of a few short fields, or None when it cannot be read."""
    try:
        return await read_form(request, SMALL_FORM_BYTES, max_files=0, max_fields=5)
    except (BodyTooLarge, ClientDisconnect, MultiPartException):
        return None

"""Reading the site's forms: bodies bounded in size, fields bounded in length."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import FormData
from starlette.types import Message, Receive

from stockday.contracts.stocks import StockOut
from stockday.domain.stocks import InvalidStock, normalize_name, normalize_symbol

MAX_TEXT_FIELD = 1000
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# A delete form carries a token and nothing else.
SMALL_FORM_BYTES = 4096


class BodyTooLarge(Exception):
    """The request body is larger than the configured upload limit."""


@dataclass
class StockForm:
    """What the add-stock form shows: the visitor's input, its errors, its idempotency key."""

    symbol: str = ""
    name: str = ""
    upload_id: str = ""
    # One key per rendered form: a double submit of the same form creates the stock once.
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    errors: dict[str, str] = field(default_factory=dict)
    existing: StockOut | None = None

    @classmethod
    def submitted(cls, form_data: FormData) -> StockForm:
        """The form as the visitor sent it (a fresh idempotency key if it carried none)."""
        return cls(
            symbol=text_field(form_data, "symbol").strip(),
            name=text_field(form_data, "name"),
            upload_id=text_field(form_data, "upload_id").strip(),
            idempotency_key=valid_idempotency_key(text_field(form_data, "idempotency_key")),
        )

    def check_rules(self) -> bool:
        """Apply the domain's symbol and name rules, as stock-symbol will; False (with the
        reasons in ``errors``) when the form breaks one, so nothing is uploaded or sent."""
        rules = (("symbol", normalize_symbol, self.symbol), ("name", normalize_name, self.name))
        for field_name, rule, value in rules:
            try:
                rule(value)
            except InvalidStock as refused:
                self.errors[field_name] = str(refused)
        return not self.errors


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole body, refusing it as soon as it passes ``limit`` bytes."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:  # a chunked body has no Content-Length to check up front
            raise BodyTooLarge
    return bytes(body)


def replay(body: bytes) -> Receive:
    """An ASGI receive callable that hands out an already-read body once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def read_form(request: Request, limit: int, *, max_files: int, max_fields: int) -> FormData:
    """The form of ``request``, its body read (at most ``limit`` bytes) before it is parsed."""
    body = await read_body(request, limit)
    return await Request(request.scope, replay(body)).form(
        max_files=max_files, max_fields=max_fields
    )


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:MAX_TEXT_FIELD] if isinstance(value, str) else ""


def valid_idempotency_key(raw: str) -> str:
    """The form's key when it is a UUID; a fresh one when a client sent none or garbage."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return str(uuid.uuid4())

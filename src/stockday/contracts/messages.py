"""Queue messages: JSON envelopes with a type and a schema version, objects referred to by key."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION: Literal[1] = 1
# Message attribute carrying when a logo was requested (Unix seconds), from the job to its
# result: queue-worker measures the time from request to logo ready against it.
REQUESTED_AT_ATTRIBUTE = "requested-at"


class MalformedMessage(ValueError):
    """A message body that is not a known, valid envelope. Retrying cannot fix it."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = SCHEMA_VERSION


class LogoRequested(_Message):
    """Job for logo-resizer: resize the raw upload for a stock."""

    type: Literal["logo.requested"] = "logo.requested"
    symbol: str = Field(min_length=1, max_length=20)
    upload_id: str = Field(min_length=1, max_length=64)
    upload_key: str = Field(min_length=1, max_length=200)


class LogoResized(_Message):
    """Event for queue-worker: the resized logo is stored under ``logo_key``."""

    type: Literal["logo.resized"] = "logo.resized"
    symbol: str = Field(min_length=1, max_length=20)
    upload_id: str = Field(min_length=1, max_length=64)
    logo_key: str = Field(min_length=1, max_length=200)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class LogoFailed(_Message):
    """Event for queue-worker: the upload can never become a logo (not an image, too large)."""

    type: Literal["logo.failed"] = "logo.failed"
    symbol: str = Field(min_length=1, max_length=20)
    upload_id: str = Field(min_length=1, max_length=64)
    error: str = Field(max_length=500)


Message = Annotated[LogoRequested | LogoResized | LogoFailed, Field(discriminator="type")]
_adapter: TypeAdapter[LogoRequested | LogoResized | LogoFailed] = TypeAdapter(Message)


def encode(message: LogoRequested | LogoResized | LogoFailed) -> str:
    return message.model_dump_json()


def decode(body: str) -> LogoRequested | LogoResized | LogoFailed:
    """Parse a message body or raise MalformedMessage with a reason fit for a log line."""
    try:
        raw: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedMessage("body is not a JSON object")
    if raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise MalformedMessage(f"unsupported schema_version {raw.get('schema_version')!r}")
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MalformedMessage(f"invalid message at {where or 'body'}: {first['msg']}") from None

"""Stocks and the logo state machine: plain data and rules, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

# A canonical symbol: 1-10 letters or digits starting with a letter, with an optional class
# suffix such as BRK.B or RDS-A. Stored and answered upper-case.
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.-][A-Z0-9]{1,4})?$")
# What a caller may send: the same in either case, ASCII only, nothing around it. It is
# matched before any case mapping, because Unicode upper-casing turns other text into valid
# symbols ("ß" into "SS", dotless i (U+0131) into "I"). Written to read alike in Python and in the
# ECMA-262 dialect of OpenAPI's JSON Schema, where it is published.
SYMBOL_INPUT_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,9}(?:[.-][A-Za-z0-9]{1,4})?$"
_SYMBOL_INPUT = re.compile(SYMBOL_INPUT_PATTERN)
SYMBOL_RULE = (
    "use 1-10 ASCII letters or digits starting with a letter, optionally followed by "
    "'.' or '-' and a class suffix of 1-4 letters or digits (e.g. AAPL, BRK.B)"
)
MAX_NAME_LENGTH = 120
# Unicode categories a name may not hold: controls (Cc: NUL, tab, newline, DEL...), invisible
# format characters (Cf: bidi overrides such as U+202E, zero-width spaces and joiners, soft
# hyphens), line and paragraph separators (Zl, Zp), and lone surrogates (Cs), which no UTF-8
# text can carry. Everything else people write in a name (accents, any script, emoji) is kept.
FORBIDDEN_NAME_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate",
}
NAME_RULE = (
    f"1-{MAX_NAME_LENGTH} characters, none of them a control character (Unicode category Cc), "
    "an invisible formatting character such as a bidi override or a zero-width space (Cf), "
    "or a line or paragraph separator (Zl, Zp)"
)
# Every raw upload's object key starts with this; resized logos live elsewhere (logo_key).
UPLOADS_PREFIX = "uploads/"


class InvalidStock(ValueError):
    """Input that can never make a valid stock (answered with 422)."""


class InvalidTransition(ValueError):
    """A logo transition that does not apply to the stock's current logo (answered with 409)."""


def describe_character(ch: str) -> str:
    """A character as people can read it in a message: its code point and Unicode name."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def normalize_symbol(raw: str) -> str:
    """Return the canonical (upper-case) form of a ticker symbol or raise InvalidStock."""
    if _SYMBOL_INPUT.fullmatch(raw):
        return raw.upper()
    shown = repr(raw) if len(raw) <= 20 else f"{raw[:20]!r}..."
    foreign = next((ch for ch in raw if not ch.isascii()), None)
    if foreign is not None:
        raise InvalidStock(
            f"symbol {shown} is not a ticker: {describe_character(foreign)} is not an ASCII "
            f"letter or digit; {SYMBOL_RULE}"
        )
    raise InvalidStock(f"symbol {shown} is not a ticker: {SYMBOL_RULE}")


def forbidden_in_name(ch: str) -> bool:
    """Whether a name may not hold ``ch`` (its category is one of FORBIDDEN_NAME_CATEGORIES)."""
    return unicodedata.category(ch) in FORBIDDEN_NAME_CATEGORIES


def normalize_name(raw: str) -> str:
    """Return the name with its runs of spaces made one, or raise InvalidStock saying why."""
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidStock(f"name is longer than {MAX_NAME_LENGTH} characters")
    forbidden = next((ch for ch in raw if forbidden_in_name(ch)), None)
    if forbidden is not None:
        kind = FORBIDDEN_NAME_CATEGORIES[unicodedata.category(forbidden)]
        raise InvalidStock(
            f"name must not contain {describe_character(forbidden)}, {kind}: a name is {NAME_RULE}"
        )
    name = " ".join(raw.split())
    if not name:
        raise InvalidStock("name must not be empty")
    return name


class LogoState(StrEnum):
    NONE = "none"
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Logo:
    """The logo of a stock: which upload it comes from, where the resized image lives."""

    state: LogoState = LogoState.NONE
    upload_id: str | None = None
    key: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """A quote as shown to a visitor."""

    value: float
    previous_close: float
    as_of: date
    source: str
    currency: str = "USD"
    stale: bool = False

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-ready fields for storage and caches; ``stale`` is a reading, not stored."""
        return {
            "value": self.value,
            "previous_close": self.previous_close,
            "as_of": self.as_of.isoformat(),
            "source": self.source,
            "currency": self.currency,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Price:
        return cls(
            value=record["value"],
            previous_close=record["previous_close"],
            as_of=date.fromisoformat(record["as_of"]),
            source=record["source"],
            currency=record.get("currency", "USD"),
        )

    @property
    def change(self) -> float:
        return round(self.value - self.previous_close, 4)

    @property
    def change_percent(self) -> float:
        if self.previous_close == 0:
            return 0.0
        return round((self.value - self.previous_close) / self.previous_close * 100, 4)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Stock:
    """A stock on the shared watchlist.

    ``version`` starts at 1 and grows by one on every write; repositories only accept a write
    whose expected version matches the stored one (optimistic locking). A ``hidden`` stock is
    left out of the random pick and the listing by an operator, and still readable by symbol;
    only the repository's ``set_hidden`` changes it.
    """

    symbol: str
    name: str
    logo: Logo = field(default_factory=Logo)
    last_price: Price | None = None
    version: int = 1
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    request_key: str | None = None
    hidden: bool = False

    @classmethod
    def new(
        cls,
        symbol: str,
        name: str,
        upload_id: str | None = None,
        request_key: str | None = None,
    ) -> Stock:
        logo = Logo(state=LogoState.PENDING, upload_id=upload_id) if upload_id else Logo()
        return cls(
            symbol=normalize_symbol(symbol),
            name=normalize_name(name),
            logo=logo,
            request_key=request_key,
        )

    def _next(self, **changes: object) -> Stock:
        return replace(self, version=self.version + 1, updated_at=utcnow(), **changes)  # type: ignore[arg-type]

    # --- logo state machine -------------------------------------------------------------
    # none/ready/failed/pending --request(u)--> pending(u)
    # pending(u) --ready(u, key)--> ready(u, key);  pending(u) --failed(u)--> failed(u)
    # Every transition is idempotent: applying it to a stock already in its target state is a
    # no-op (returns the same object, so callers know nothing needs writing).

    def request_logo(self, upload_id: str) -> Stock:
        if self.logo.upload_id == upload_id and self.logo.state is not LogoState.NONE:
            return self
        return self._next(logo=Logo(state=LogoState.PENDING, upload_id=upload_id))

    def logo_ready(self, upload_id: str, key: str) -> Stock:
        wanted = logo_key(self.symbol, upload_id)
        if key != wanted:
            raise InvalidStock(f"a ready logo of this upload must be stored under {wanted}")
        if self.logo.upload_id != upload_id:
            raise InvalidTransition(
                f"logo of {self.symbol} now comes from upload {self.logo.upload_id}, "
                f"not {upload_id}"
            )
        if self.logo.state is LogoState.READY and self.logo.key == key:
            return self
        if self.logo.state is not LogoState.PENDING:
            raise InvalidTransition(f"logo of {self.symbol} is {self.logo.state}, not pending")
        return self._next(logo=Logo(state=LogoState.READY, upload_id=upload_id, key=key))

    def logo_failed(self, upload_id: str, error: str) -> Stock:
        if self.logo.upload_id != upload_id:
            raise InvalidTransition(
                f"logo of {self.symbol} now comes from upload {self.logo.upload_id}, "
                f"not {upload_id}"
            )
        if self.logo.state is LogoState.FAILED:
            return self
        if self.logo.state is not LogoState.PENDING:
            raise InvalidTransition(f"logo of {self.symbol} is {self.logo.state}, not pending")
        return self._next(logo=Logo(state=LogoState.FAILED, upload_id=upload_id, error=error))

    def with_price(self, price: Price) -> Stock:
        """Remember the latest known price, the fallback when the price service is down."""
        return self._next(last_price=replace(price, stale=False))


def logo_key(symbol: str, upload_id: str) -> str:
    """Deterministic object key of a resized logo: a retried job overwrites, never duplicates."""
    return f"logos/{symbol}/{upload_id}.webp"


def upload_key(upload_id: str) -> str:
    """Object key of a raw upload."""
    return f"{UPLOADS_PREFIX}{upload_id}"


# Beside a raw upload, an empty marker says a stock links it: the janitor then keeps the upload
# for the longer retention, and a create refused with it does not delete it. Upload ids are
# hexadecimal, so a marker's key never names an upload.
LINK_SUFFIX = ".linked"


def upload_link_key(upload_id: str) -> str:
    """Object key of the marker that says a stock links the raw upload ``upload_id``."""
    return f"{UPLOADS_PREFIX}{upload_id}{LINK_SUFFIX}"
